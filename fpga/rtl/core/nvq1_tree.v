// LANES products a_l*b_l (32x18 signed) reduced by a registered binary adder tree (a heap:
// node n sums nodes 2n+1 and 2n+2 of the previous cycle). LANES is a power of two; the root
// holds the sum of inputs presented 1 + log2(LANES) cycles earlier. Used where the fitting
// net reduces across lanes (final layer, backward GEMV). Sums stay below 2^52 (§2.3).
module nvq1_tree #(parameter LANES = 8) (
    input  wire                  clk,
    input  wire [32*LANES-1:0]   a,
    input  wire [18*LANES-1:0]   b,
    output wire signed [63:0]    root
);
    reg signed [63:0] node [0:2*LANES-2];
    wire signed [63:0] prod [0:LANES-1];
    genvar l;
    generate for (l = 0; l < LANES; l = l + 1) begin : lane
        wire signed [31:0] al = a[32*l +: 32];
        wire signed [17:0] bl = b[18*l +: 18];
        assign prod[l] = al * bl;
    end endgenerate
    integer n;
    always @(posedge clk) begin
        for (n = 0; n < LANES; n = n + 1) node[LANES - 1 + n] <= prod[n];
        for (n = 0; n < LANES - 1; n = n + 1) node[n] <= node[2 * n + 1] + node[2 * n + 2];
    end
    assign root = node[0];
endmodule
