// One MAC lane of the fitting GEMV (fpga/SPEC.md §2.3): a 27x18 signed product per cycle,
// summed in a 48-bit accumulator in groups of at most 16 terms (the DSP48E2's P register),
// each group then added into a 52-bit fabric accumulator. `clr` starts a new sum; `en` feeds
// a product, `last` marks the final one; `sum` holds the total 2 cycles after `last`.
module nvq1_mac (
    input  wire               clk,
    input  wire               clr,
    input  wire               en,
    input  wire               last,
    input  wire signed [26:0] a,
    input  wire signed [17:0] b,
    output reg  signed [51:0] sum
);
    reg signed [44:0] p;
    reg signed [47:0] acc;
    reg v1, l1;
    reg [3:0] gcnt;
    always @(posedge clk) begin
        p <= a * b;
        v1 <= en;
        l1 <= last;
        if (clr) begin
            acc <= 48'sd0; gcnt <= 4'd0; sum <= 52'sd0;
        end else if (v1) begin
            if (gcnt == 4'd15 || l1) begin
                sum <= sum + acc + p; acc <= 48'sd0; gcnt <= 4'd0;
            end else begin
                acc <= acc + p; gcnt <= gcnt + 4'd1;
            end
        end
    end
endmodule
