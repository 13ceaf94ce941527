// rnd/sat unit (fpga/SPEC.md §2.2) as a module of its own: y = sat(rnd(x, k), BITS), clip flag.
// The core uses the same functions (nvq1_fn.vh) inline; this wrapper exists for unit tests.
module nvq1_rndsat #(parameter BITS = 27) (
    input  wire signed [63:0] x,
    input  wire signed [7:0]  k,
    output wire signed [63:0] y,
    output wire               clip
);
`include "nvq1_fn.vh"
    wire signed [63:0] r = rnd(x, k);
    assign y = sat_v(r, BITS);
    assign clip = sat_f(r, BITS);
endmodule
