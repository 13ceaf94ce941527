// Test bench around nvq1_core: the clock is generated here (Verilator --timing, Icarus), so a
// cocotb test or a native run does not drive every cycle. With PRELOAD the frame comes from
// FRAME_DIR and the bench pulses start itself (AUTOSTART); with DUMP_FILE set it writes every
// result word ("sel addr value" in hex) when done and finishes (native runs).
`timescale 1ns/1ps
module nvq1_core_tb #(
    parameter AUTOSTART = 0,
    parameter DUMP_FILE = "",
    parameter DUMP = 0,
    parameter LANES = 8,
    parameter MAX_ATOMS = 1024,
    parameter MAX_K = 128,
    parameter MEM_DIR = "",
    parameter BANK_DIR = "",
    parameter PRELOAD = 0,
    parameter FRAME_DIR = "",
    parameter NTYPES = 4,
    parameter M1 = 32,
    parameter M2 = 8,
    parameter NU1 = 289,
    parameter NS1 = 303,
    parameter TYPE_ONE_SIDE = 1,
    parameter [63:0] SEL = 0,
    parameter [63:0] U_CUT = 0,
    parameter K_LO = 0,
    parameter S0 = 0,
    parameter F_H = 0,
    parameter F_GT = 0,
    parameter F_GQ = 0,
    parameter F_T = 0,
    parameter F_D = 0,
    parameter F_GTT = 0,
    parameter F_GR = 0,
    parameter F_GG = 0,
    parameter F_GS = 0,
    parameter F_GH = 0,
    parameter F_GU = 0,
    parameter F_P = 0,
    parameter NHID = 3,
    parameter [63:0] WIDTHS = 0,
    parameter [63:0] SHORTCUT = 0,
    parameter [63:0] IDT = 0,
    parameter [63:0] F_IDT = 0,
    parameter [63:0] F_G = 0
) ();
    reg clk = 1'b0;
    always #5 clk = ~clk;
    reg rst = 1'b1;
    reg wr_en = 1'b0;
    reg [2:0] wr_sel = 3'd0;
    reg [31:0] wr_addr = 32'd0;
    reg [63:0] wr_data = 64'd0;
    reg start = 1'b0;
    reg [1:0] rd_sel = 2'd0;
    reg [31:0] rd_addr = 32'd0;
    wire busy, done;
    wire [63:0] rd_data;
    nvq1_core #(
        .LANES(LANES), .MAX_ATOMS(MAX_ATOMS), .MAX_K(MAX_K), .MEM_DIR(MEM_DIR), .BANK_DIR(BANK_DIR),
        .PRELOAD(PRELOAD), .FRAME_DIR(FRAME_DIR), .NTYPES(NTYPES), .M1(M1), .M2(M2), .NU1(NU1),
        .NS1(NS1), .TYPE_ONE_SIDE(TYPE_ONE_SIDE), .SEL(SEL), .U_CUT(U_CUT), .K_LO(K_LO), .S0(S0),
        .F_H(F_H), .F_GT(F_GT), .F_GQ(F_GQ), .F_T(F_T), .F_D(F_D), .F_GTT(F_GTT), .F_GR(F_GR),
        .F_GG(F_GG), .F_GS(F_GS), .F_GH(F_GH), .F_GU(F_GU), .F_P(F_P), .NHID(NHID), .WIDTHS(WIDTHS),
        .SHORTCUT(SHORTCUT), .IDT(IDT), .F_IDT(F_IDT), .F_G(F_G)
    ) dut (.clk(clk), .rst(rst), .wr_en(wr_en), .wr_sel(wr_sel), .wr_addr(wr_addr), .wr_data(wr_data),
        .start(start), .busy(busy), .done(done), .rd_sel(rd_sel), .rd_addr(rd_addr), .rd_data(rd_data));
    initial begin
        repeat (4) @(posedge clk);
        rst <= 1'b0;
    end
    integer fd, i, n;
    generate if (AUTOSTART) begin : auto
        initial begin
            repeat (6) @(posedge clk);
            start <= 1'b1;
            @(posedge clk);
            start <= 1'b0;
        end
    end endgenerate
    generate if (DUMP) begin : dump
        initial begin
            @(posedge done);
            @(posedge clk);
            fd = $fopen(DUMP_FILE, "w");
            n = dut.natoms;
            for (i = 0; i < 41 + n + 3 * n; i = i + 1) begin
                rd_sel <= (i < 41) ? 2'd0 : (i < 41 + n) ? 2'd1 : 2'd2;
                rd_addr <= (i < 41) ? i : (i < 41 + n) ? i - 41 : i - 41 - n;
                @(posedge clk);
                @(posedge clk);
                #1 $fwrite(fd, "%0d %0d %h\n", rd_sel, rd_addr, rd_data);
            end
            $fclose(fd);
            $finish;
        end
    end endgenerate
endmodule
