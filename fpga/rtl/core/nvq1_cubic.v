// The cubic table unit (fpga/SPEC.md §4): from Hermite coefficients a, b, c, d and the 17-bit
// segment offset t, the value y = d + rnd(t(c + rnd(t(b + rnd(ta,17)),17)),17) and the slope
// y' = c + rnd(t(2b + rnd(3at,17)),17). Three register stages (one per Horner step, each a
// 27x18 product as a DSP48E2 would form it): outputs appear 3 cycles after the inputs.
module nvq1_cubic (
    input  wire               clk,
    input  wire signed [31:0] a,
    input  wire signed [31:0] b,
    input  wire signed [31:0] c,
    input  wire signed [31:0] d,
    input  wire        [16:0] t,
    output reg  signed [63:0] y,
    output reg  signed [63:0] yp
);
`include "nvq1_fn.vh"
    wire signed [63:0] ts = $signed({47'd0, t});
    reg signed [63:0] p1, p1s, b1, c1, d1, t1;
    reg signed [63:0] p2, p2s, c2, d2, t2;
    always @(posedge clk) begin
        p1 <= rnd(ts * a, 17);
        p1s <= rnd(ts * (3 * a), 17);
        b1 <= b; c1 <= c; d1 <= d; t1 <= ts;
        p2 <= rnd(t1 * (b1 + p1), 17);
        p2s <= rnd(t1 * (2 * b1 + p1s), 17);
        c2 <= c1; d2 <= d1; t2 <= t1;
        y <= d2 + rnd(t2 * (c2 + p2), 17);
        yp <= c2 + p2s;
    end
endmodule
