// Test bench of the board's COMPUTE path in RTL: link bytes -> nvq_link_rx -> nvq_compute_front
// -> nvq1_core -> nvq_compute_front -> nvq_link_tx -> link bytes. The clock is generated here
// (Verilator --timing, Icarus), so a cocotb test drives only the byte streams and waits for the
// core on simulated time. The message layer's side (loaded, clear, frames of other types on
// o_*) is left to the test.
`timescale 1ns/1ps
module nvq_front_tb #(
    parameter RING_AW = 12,
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
) (
    // link in
    input  wire [7:0]  s_tdata,
    input  wire        s_tvalid,
    output wire        s_tready,
    // link out
    output wire [7:0]  m_tdata,
    output wire        m_tvalid,
    input  wire        m_tready,
    // the message layer
    input  wire        loaded,
    input  wire        clear,
    output wire        o_hdr_valid,
    input  wire        o_hdr_ready,
    output wire [7:0]  o_type,
    output wire [31:0] o_seq,
    output wire [31:0] o_len,
    output wire [7:0]  o_tdata,
    output wire        o_tvalid,
    input  wire        o_tready,
    output wire        o_tlast,
    output wire        cell_valid,
    output wire        list_valid,
    output wire [31:0] frames_ok,
    output wire [31:0] bad_frames,
    output reg         rst
);
    reg clk = 1'b0;
    always #5 clk = ~clk;
    initial begin
        rst = 1'b1;
        repeat (4) @(posedge clk);
        rst <= 1'b0;
    end

    // rx -> front
    wire        f_hdr_valid, f_hdr_ready, f_tvalid, f_tready, f_tlast;
    wire [7:0]  f_type, f_tdata;
    wire [15:0] f_flags;
    wire [31:0] f_seq, f_len, dropped;
    nvq_link_rx #(.RING_AW(RING_AW)) u_rx (
        .clk(clk), .rst(rst), .s_tdata(s_tdata), .s_tvalid(s_tvalid), .s_tready(s_tready),
        .m_hdr_valid(f_hdr_valid), .m_hdr_ready(f_hdr_ready), .m_type(f_type), .m_flags(f_flags), .m_seq(f_seq),
        .m_len(f_len), .m_tdata(f_tdata), .m_tvalid(f_tvalid), .m_tready(f_tready), .m_tlast(f_tlast),
        .frames_ok(frames_ok), .bad_frames(bad_frames), .dropped_bytes(dropped));

    // front <-> core
    wire        wr_en, start, busy, done;
    wire [2:0]  wr_sel;
    wire [31:0] wr_addr, rd_addr;
    wire [63:0] wr_data, rd_data;
    wire [1:0]  rd_sel;
    // front -> tx
    wire        r_hdr_valid, r_hdr_ready, r_tvalid, r_tready;
    wire [7:0]  r_type, r_tdata;
    wire [15:0] r_flags, o_flags;
    wire [31:0] r_seq, r_len, list_rows;
    nvq_compute_front #(.MAX_ATOMS(MAX_ATOMS), .MAX_K(MAX_K), .NTYPES(NTYPES)) u_front (
        .clk(clk), .rst(rst), .loaded(loaded), .clear(clear), .cell_valid(cell_valid), .list_valid(list_valid),
        .list_rows(list_rows),
        .s_hdr_valid(f_hdr_valid), .s_hdr_ready(f_hdr_ready), .s_type(f_type), .s_flags(f_flags), .s_seq(f_seq),
        .s_len(f_len), .s_tdata(f_tdata), .s_tvalid(f_tvalid), .s_tready(f_tready), .s_tlast(f_tlast),
        .o_hdr_valid(o_hdr_valid), .o_hdr_ready(o_hdr_ready), .o_type(o_type), .o_flags(o_flags), .o_seq(o_seq),
        .o_len(o_len), .o_tdata(o_tdata), .o_tvalid(o_tvalid), .o_tready(o_tready), .o_tlast(o_tlast),
        .wr_en(wr_en), .wr_sel(wr_sel), .wr_addr(wr_addr), .wr_data(wr_data), .start(start), .busy(busy),
        .done(done), .rd_sel(rd_sel), .rd_addr(rd_addr), .rd_data(rd_data),
        .m_hdr_valid(r_hdr_valid), .m_hdr_ready(r_hdr_ready), .m_type(r_type), .m_flags(r_flags), .m_seq(r_seq),
        .m_len(r_len), .m_tdata(r_tdata), .m_tvalid(r_tvalid), .m_tready(r_tready));

    nvq1_core #(
        .LANES(LANES), .MAX_ATOMS(MAX_ATOMS), .MAX_K(MAX_K), .MEM_DIR(MEM_DIR), .BANK_DIR(BANK_DIR),
        .PRELOAD(PRELOAD), .FRAME_DIR(FRAME_DIR), .NTYPES(NTYPES), .M1(M1), .M2(M2), .NU1(NU1),
        .NS1(NS1), .TYPE_ONE_SIDE(TYPE_ONE_SIDE), .SEL(SEL), .U_CUT(U_CUT), .K_LO(K_LO), .S0(S0),
        .F_H(F_H), .F_GT(F_GT), .F_GQ(F_GQ), .F_T(F_T), .F_D(F_D), .F_GTT(F_GTT), .F_GR(F_GR),
        .F_GG(F_GG), .F_GS(F_GS), .F_GH(F_GH), .F_GU(F_GU), .F_P(F_P), .NHID(NHID), .WIDTHS(WIDTHS),
        .SHORTCUT(SHORTCUT), .IDT(IDT), .F_IDT(F_IDT), .F_G(F_G)
    ) u_core (.clk(clk), .rst(rst), .wr_en(wr_en), .wr_sel(wr_sel), .wr_addr(wr_addr), .wr_data(wr_data),
        .start(start), .busy(busy), .done(done), .rd_sel(rd_sel), .rd_addr(rd_addr), .rd_data(rd_data));

    nvq_link_tx u_tx (
        .clk(clk), .rst(rst), .s_hdr_valid(r_hdr_valid), .s_hdr_ready(r_hdr_ready), .s_type(r_type),
        .s_flags(r_flags), .s_seq(r_seq), .s_len(r_len), .s_tdata(r_tdata), .s_tvalid(r_tvalid),
        .s_tready(r_tready), .m_tdata(m_tdata), .m_tvalid(m_tvalid), .m_tready(m_tready));
endmodule
