// nvq1_core: the nvq1 datapath of fpga/SPEC.md §5–§7 for one frame, bit for bit as
// sim/nvq1/ref.py. Ports and parameters: fpga/rtl/core/INTERFACE.md. Schedule (one atom at a
// time, one FSM; cycle counts in fpga/rtl/core/cycles.py):
//   neighbour decode and in-range test per slot -> radial tables s̃, h̃ (§5.2) -> R̃ (§5.3) ->
//   G, G' per channel (§5.4, 2 cycles each) with T accumulation -> padding, T, D (§5.5-5.6) ->
//   fitting layers on LANES MAC lanes (§6) -> final layer and energy -> fitting backward on a
//   LANES adder tree (§7.1) -> gT -> per pair gR̃ gG gs gh gu f, force and virial (§7.2-7.3).
// Memories read with a registered address and a registered output (BRAM): data arrives two
// cycles after the FSM sets the address. Model memories come from `nvnmd quantize --emit-mem`.
// The arithmetic of every state is a combinational stage module of nvq1_stages.v (one per step
// of sim/nvq1/stages.py); the FSM here registers their outputs, one update per state.
module nvq1_core #(
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
    parameter F_H = 0, parameter F_GT = 0, parameter F_GQ = 0, parameter F_T = 0, parameter F_D = 0,
    parameter F_GTT = 0, parameter F_GR = 0, parameter F_GG = 0, parameter F_GS = 0,
    parameter F_GH = 0, parameter F_GU = 0, parameter F_P = 0,
    parameter NHID = 3,
    parameter [63:0] WIDTHS = 0,
    parameter [63:0] SHORTCUT = 0,
    parameter [63:0] IDT = 0,
    parameter [63:0] F_IDT = 0,
    parameter [63:0] F_G = 0
) (
    input  wire        clk,
    input  wire        rst,
    input  wire        wr_en,
    input  wire [2:0]  wr_sel,
    input  wire [31:0] wr_addr,
    input  wire [63:0] wr_data,
    input  wire        start,
    output wire        busy,
    output reg         done,
    input  wire [1:0]  rd_sel,
    input  wire [31:0] rd_addr,
    output reg  [63:0] rd_data
);
`include "nvq1_fn.vh"

    // ------------------------------------------------------------------ shape helpers
    function integer w_of;  input integer l; w_of = (WIDTHS >> (12 * l)) & 64'hfff; endfunction
    function integer nin_of; input integer l; nin_of = (l == 0) ? M1 * M2 : w_of(l - 1); endfunction
    function integer nout_of; input integer l; nout_of = (l == NHID) ? 1 : w_of(l); endfunction
    function integer sc_of; input integer l; sc_of = (SHORTCUT >> (2 * l)) & 64'h3; endfunction
    function integer idt_of; input integer l; idt_of = (IDT >> l) & 64'h1; endfunction
    function integer fidt_of; input integer l; fidt_of = (F_IDT >> (8 * l)) & 64'hff; endfunction
    function integer fg_of; input integer l;
        reg [7:0] v; begin v = (F_G >> (8 * l)) & 64'hff; fg_of = $signed(v); end
    endfunction
    function integer sel_of; input integer t; sel_of = (SEL >> (8 * t)) & 64'hff; endfunction
    function integer maxw_f; input integer dummy; integer l, m; begin
        m = M1 * M2; for (l = 0; l < NHID; l = l + 1) if (w_of(l) > m) m = w_of(l); maxw_f = m; end
    endfunction
    function integer clog2; input integer v; integer r; begin
        r = 0; while ((1 << r) < v) r = r + 1; clog2 = r; end
    endfunction
    localparam MAXW = maxw_f(0);
    localparam LG = clog2(LANES);
    localparam TL = 1 + LG;                 // adder tree latency
    localparam NTAB = TYPE_ONE_SIDE ? NTYPES : NTYPES * NTYPES;
    localparam MASK17 = 17'h1ffff;
    localparam NL = NHID + 1;               // layers incl. the final one

    // counter sites (sim/nvq1/sites.py order)
    localparam C_S = 0, C_H = 1, C_R = 2, C_G = 3, C_GSL = 4, C_T = 5, C_D = 6, C_Z = 7, C_X = 8,
               C_TSL = 9, C_GF = 10, C_GT = 11, C_GT18 = 12, C_GR = 13, C_GG = 14, C_GS = 15,
               C_GH = 16, C_GU = 17, C_PF = 18, C_FORCE = 19, C_CLOSE = 20, C_GRANGE = 21;
    localparam NSITES = 22;

    // ------------------------------------------------------------------ state
    localparam S_IDLE = 0, S_INIT = 1, S_ATOM = 2, S_SLOT = 3, S_UT = 4, S_G = 5, S_PAD = 6,
               S_T = 7, S_D = 8, S_MAC = 9, S_POST = 10, S_FIN = 11, S_BINIT = 12, S_GH = 13,
               S_GX = 14, S_GT = 15, S_PB = 16, S_PF1 = 17, S_PF2 = 18, S_PF3 = 19, S_PF4 = 20,
               S_AEND = 21, S_FORCE = 22, S_DONE = 23;
    reg [4:0] st;
    reg [31:0] c;
    assign busy = (st != S_IDLE) && (st != S_DONE);

    reg [31:0] cnt [0:NSITES - 1];
    reg [31:0] overflow, cycles;
    reg signed [63:0] etot;
    reg signed [63:0] vir [0:8];

    // per atom
    reg [31:0] ai, nlbase, ks, npairs, pp;
    reg [3:0] ti;
    reg signed [31:0] ci0, ci1, ci2;
    reg [7:0] n_in [0:7];
    reg signed [63:0] fi0, fi1, fi2;
    reg signed [63:0] vi [0:8];
    // per slot
    reg signed [31:0] sj;
    reg [3:0] tj;
    reg signed [7:0] sh0, sh1, sh2;
    reg signed [31:0] cj0, cj1;
    reg signed [63:0] r0, r1, r2;
    reg signed [63:0] uu;
    reg inr;
    reg [31:0] useg;
    reg [16:0] ut;
    reg uclose;
    reg signed [26:0] ys0, ym0, yh0, yhm0, ys1, ym1, yh1, yhm1;
    reg signed [26:0] cR0, cR1, cR2, cR3;
    reg [31:0] gseg;
    reg [16:0] gtt;
    reg gclamp;
    reg [31:0] gbase;
    reg signed [26:0] gy0, gm0;
    // layers
    reg [3:0] cur_l;
    reg xsel, gsel;
    reg [31:0] nin_c, nout_c, nb_c, jb;
    integer fx;
    reg [1:0] fd_d, fd_d2;
    reg [16:0] tarr [0:LANES - 1];
    reg barr [0:LANES - 1];
    reg signed [7:0] emin_run;
    reg signed [17:0] iarr [0:LANES - 1];
    reg narr [0:LANES - 1];
    reg signed [63:0] eacc;
    reg [31:0] i_k, i_jb, d_jb, o_k, o_jb, n_iss, n_out;
    reg [31:0] d_jb1;
    reg signed [63:0] gacc;
    // gT
    reg [31:0] ga, gm_, gn;
    reg signed [63:0] gtacc;
    // pair
    reg [31:0] cj;
    reg signed [63:0] pr0, pr1, pr2, ph, pqs, pqh, pR0, pR1, pR2, pR3;
    reg signed [63:0] gra0, gra1, gra2, gra3, gsacc;
    reg signed [63:0] gR0, gR1, gR2, gR3, gsv, ghv, guv;
    // force pass
    reg [31:0] fa, fd;

    // ------------------------------------------------------------------ frame memories
    reg signed [31:0] fr_xyz [0:3 * MAX_ATOMS - 1];
    reg        [3:0]  fr_type [0:MAX_ATOMS - 1];
    reg signed [31:0] fr_nl [0:MAX_ATOMS * MAX_K - 1];
    reg signed [7:0]  fr_sh [0:3 * MAX_ATOMS * MAX_K - 1];
    reg signed [31:0] cellr [0:8];
    reg [31:0] natoms, kk;
    reg [31:0] a_xyz, a_type, a_nl, a_sh;
    reg signed [31:0] q_xyz, q_nl;
    reg [3:0] q_type;
    reg signed [7:0] q_sh;
    always @(posedge clk) begin
        if (wr_en && wr_sel == 3'd1) fr_xyz[wr_addr] <= wr_data[31:0];
        if (wr_en && wr_sel == 3'd2) fr_type[wr_addr] <= wr_data[3:0];
        if (wr_en && wr_sel == 3'd4) fr_nl[wr_addr] <= wr_data[31:0];
        if (wr_en && wr_sel == 3'd5) fr_sh[wr_addr] <= wr_data[7:0];
        q_xyz <= fr_xyz[a_xyz];
        q_type <= fr_type[a_type];
        q_nl <= fr_nl[a_nl];
        q_sh <= fr_sh[a_sh];
    end
    generate if (PRELOAD) begin : preload
        reg [31:0] fr_cfg [0:1];
        reg [31:0] fr_cell [0:8];
        integer pi;
        initial begin
            $readmemh({FRAME_DIR, "/frame.mem"}, fr_cfg);
            $readmemh({FRAME_DIR, "/coords.mem"}, fr_xyz);
            $readmemh({FRAME_DIR, "/types.mem"}, fr_type);
            $readmemh({FRAME_DIR, "/cell.mem"}, fr_cell);
            $readmemh({FRAME_DIR, "/nlist.mem"}, fr_nl);
            $readmemh({FRAME_DIR, "/shifts.mem"}, fr_sh);
            natoms = fr_cfg[0]; kk = fr_cfg[1];
            for (pi = 0; pi < 9; pi = pi + 1) cellr[pi] = fr_cell[pi];
        end
    end endgenerate

    // ------------------------------------------------------------------ model memories
    // u_tab [NTYPES,4,NU1] (two read ports: s̃ side, h̃ side)
    reg signed [26:0] m_utab [0:NTYPES * 4 * NU1 - 1];
    reg [31:0] a_ua, a_ub;
    reg signed [26:0] q_ua, q_ub;
    // g_tab [NTAB,2,NS1,M1] (two read ports: values, slopes)
    reg signed [26:0] m_gtab [0:NTAB * 2 * NS1 * M1 - 1];
    reg [31:0] a_ga, a_gb;
    reg signed [26:0] q_ga, q_gb;
    // tanh_tab [2,257] twice (four read ports: Y[k], Y[k+1], M[k], M[k+1])
    reg signed [26:0] m_tha [0:513];
    reg signed [26:0] m_thb [0:513];
    reg [9:0] a_t0, a_t1, a_t2, a_t3;
    reg signed [26:0] q_t0, q_t1, q_t2, q_t3;
    // pad [NTYPES,NTYPES,M1], e_const [NTYPES]
    reg signed [47:0] m_pad [0:NTYPES * NTYPES * M1 - 1];
    reg signed [47:0] m_econst [0:NTYPES - 1];
    reg [31:0] a_pad, a_ec;
    reg signed [47:0] q_pad, q_ec;
    initial begin
        $readmemh({MEM_DIR, "/u_tab.mem"}, m_utab);
        $readmemh({MEM_DIR, "/g_tab.mem"}, m_gtab);
        $readmemh({MEM_DIR, "/tanh_tab.mem"}, m_tha);
        $readmemh({MEM_DIR, "/tanh_tab.mem"}, m_thb);
        $readmemh({MEM_DIR, "/pad.mem"}, m_pad);
        $readmemh({MEM_DIR, "/e_const.mem"}, m_econst);
    end
    always @(posedge clk) begin
        q_ua <= m_utab[a_ua]; q_ub <= m_utab[a_ub];
        q_ga <= m_gtab[a_ga]; q_gb <= m_gtab[a_gb];
        q_t0 <= m_tha[a_t0]; q_t1 <= m_tha[a_t1];
        q_t2 <= m_thb[a_t2]; q_t3 <= m_thb[a_t3];
        q_pad <= m_pad[a_pad]; q_ec <= m_econst[a_ec];
    end

    // fitting layers: weights in LANES banks (bank b = flat entries ≡ b mod LANES), per-column
    // exponent, bias and idt memories. One shared address per kind; outputs muxed by layer.
    reg [31:0] a_w, a_col;
    wire [18 * LANES * NL - 1:0] wq_all;
    wire [8 * NL - 1:0]  eq_all;
    wire [27 * NL - 1:0] bq_all;
    wire [18 * NL - 1:0] iq_all;
    function [7:0] hexch; input integer v; hexch = (v < 10) ? (8'd48 + v) : (8'd87 + v); endfunction
    genvar gl, gb;
    generate for (gl = 0; gl < NL; gl = gl + 1) begin : fit
        localparam NI = nin_of(gl);
        localparam NO = nout_of(gl);
        localparam DEPTH = NTYPES * NI * NO;
        localparam [7:0] LC = 8'd48 + gl;
        reg signed [7:0]  m_e [0:NTYPES * NO - 1];
        reg signed [26:0] m_b [0:NTYPES * NO - 1];
        reg signed [17:0] m_i [0:NTYPES * NO - 1];
        reg signed [7:0]  q_e;
        reg signed [26:0] q_b;
        reg signed [17:0] q_i;
        initial begin
            $readmemh({MEM_DIR, "/fit", LC, "_e.mem"}, m_e);
            if (gl < NHID) $readmemh({MEM_DIR, "/fit", LC, "_b.mem"}, m_b);
            if (gl < NHID && idt_of(gl)) $readmemh({MEM_DIR, "/fit", LC, "_idt.mem"}, m_i);
        end
        always @(posedge clk) begin
            q_e <= m_e[a_col]; q_b <= m_b[a_col]; q_i <= m_i[a_col];
        end
        assign eq_all[8 * gl +: 8] = q_e; assign bq_all[27 * gl +: 27] = q_b; assign iq_all[18 * gl +: 18] = q_i;
        wire [18 * LANES - 1:0] wq_layer;
        assign wq_all[18 * LANES * gl +: 18 * LANES] = wq_layer;
        for (gb = 0; gb < LANES; gb = gb + 1) begin : bank
            localparam [15:0] BS = {hexch(gb / 16), hexch(gb % 16)};
            reg signed [17:0] m_w [0:DEPTH / LANES - 1];
            reg signed [17:0] q_w;
            initial $readmemh({BANK_DIR, "/fit", LC, "_w.b", BS, ".mem"}, m_w);
            always @(posedge clk) q_w <= m_w[a_w];
            assign wq_layer[18 * gb +: 18] = q_w;
        end
    end endgenerate

    // ------------------------------------------------------------------ working memories
    // force accumulators at fraction p, one memory per component
    reg signed [63:0] m_fx [0:MAX_ATOMS - 1];
    reg signed [63:0] m_fy [0:MAX_ATOMS - 1];
    reg signed [63:0] m_fz [0:MAX_ATOMS - 1];
    reg [31:0] a_f;
    reg we_f;
    reg signed [63:0] wd_fx, wd_fy, wd_fz;
    reg signed [63:0] q_fx, q_fy, q_fz;
    always @(posedge clk) begin
        if (we_f) begin m_fx[a_f] <= wd_fx; m_fy[a_f] <= wd_fy; m_fz[a_f] <= wd_fz; end
        q_fx <= m_fx[a_f]; q_fy <= m_fy[a_f]; q_fz <= m_fz[a_f];
    end
    // results
    reg signed [63:0] m_res_e [0:MAX_ATOMS - 1];
    reg signed [31:0] m_res_f [0:3 * MAX_ATOMS - 1];
    reg we_re, we_rf;
    reg [31:0] a_re, a_rf;
    reg signed [63:0] wd_re;
    reg signed [31:0] wd_rf;
    reg signed [63:0] q_re;
    reg signed [31:0] q_rf;
    always @(posedge clk) begin
        if (we_re) m_res_e[a_re] <= wd_re;
        if (we_rf) m_res_f[a_rf] <= wd_rf;
        q_re <= m_res_e[rd_addr];
        q_rf <= m_res_f[rd_addr];
    end
    // pair buffer: per in-range neighbour of the current atom
    reg signed [17:0] m_pg [0:MAX_K * M1 - 1];
    reg signed [17:0] m_pgq [0:MAX_K * M1 - 1];
    reg we_pg;
    reg [31:0] a_pg, aw_pg;
    reg signed [17:0] wd_pg, wd_pgq, q_pg, q_pgq;
    always @(posedge clk) begin
        if (we_pg) begin m_pg[aw_pg] <= wd_pg; m_pgq[aw_pg] <= wd_pgq; end
        q_pg <= m_pg[a_pg]; q_pgq <= m_pgq[a_pg];
    end
    reg [31:0]        pb_j  [0:MAX_K - 1];
    reg signed [23:0] pb_r0 [0:MAX_K - 1];
    reg signed [23:0] pb_r1 [0:MAX_K - 1];
    reg signed [23:0] pb_r2 [0:MAX_K - 1];
    reg signed [26:0] pb_h  [0:MAX_K - 1];
    reg signed [31:0] pb_qs [0:MAX_K - 1];
    reg signed [31:0] pb_qh [0:MAX_K - 1];
    reg signed [26:0] pb_R0 [0:MAX_K - 1];
    reg signed [26:0] pb_R1 [0:MAX_K - 1];
    reg signed [26:0] pb_R2 [0:MAX_K - 1];
    reg signed [26:0] pb_R3 [0:MAX_K - 1];
    // T accumulators, T, gT
    reg signed [63:0] tacc0 [0:M1 - 1];
    reg signed [63:0] tacc1 [0:M1 - 1];
    reg signed [63:0] tacc2 [0:M1 - 1];
    reg signed [63:0] tacc3 [0:M1 - 1];
    reg signed [17:0] tt [0:4 * M1 - 1];
    reg signed [26:0] gtv [0:4 * M1 - 1];
    reg signed [17:0] gts [0:4 * M1 - 1];
    // activations (two buffers), gradients (two buffers), ĝ, tanh' per layer
    reg signed [26:0] xb0 [0:MAXW - 1];
    reg signed [26:0] xb1 [0:MAXW - 1];
    reg signed [26:0] gb0 [0:MAXW - 1];
    reg signed [26:0] gb1 [0:MAXW - 1];
    reg signed [31:0] ghat [0:MAXW - 1];
    reg signed [17:0] m_dt [0:NHID * MAXW - 1];
    reg we_dt;
    reg [31:0] a_dt, aw_dt;
    reg signed [17:0] wd_dt, q_dt;
    always @(posedge clk) begin
        if (we_dt) m_dt[aw_dt] <= wd_dt;
        q_dt <= m_dt[a_dt];
    end
    reg signed [7:0] emin [0:NHID - 1];

    // ------------------------------------------------------------------ arithmetic units
    // radial cubic units (s̃ and h̃), the G unit, the tanh unit
    reg signed [31:0] cs_a, cs_b, cs_c, cs_d, ch_a, ch_b, ch_c, ch_d, cg_a, cg_b, cg_c, cg_d;
    reg signed [31:0] ct_a, ct_b, ct_c, ct_d;
    reg [16:0] cs_t, cg_t, ct_t;
    wire signed [63:0] ys, yps, yh, yph, yg, ypg, yt, ypt;
    nvq1_cubic cub_s (.clk(clk), .a(cs_a), .b(cs_b), .c(cs_c), .d(cs_d), .t(cs_t), .y(ys), .yp(yps));
    nvq1_cubic cub_h (.clk(clk), .a(ch_a), .b(ch_b), .c(ch_c), .d(ch_d), .t(cs_t), .y(yh), .yp(yph));
    nvq1_cubic cub_g (.clk(clk), .a(cg_a), .b(cg_b), .c(cg_c), .d(cg_d), .t(cg_t), .y(yg), .yp(ypg));
    nvq1_cubic cub_t (.clk(clk), .a(ct_a), .b(ct_b), .c(ct_c), .d(ct_d), .t(ct_t), .y(yt), .yp(ypt));

    // MAC lanes (fitting forward) and the adder tree (final layer, backward)
    reg mac_clr, mac_en, mac_last;
    reg signed [26:0] mac_a;
    wire [18 * LANES - 1:0] wq = wq_all[18 * LANES * cur_l +: 18 * LANES];
    wire signed [7:0]  eq_c = eq_all[8 * cur_l +: 8];
    wire signed [26:0] bq_c = bq_all[27 * cur_l +: 27];
    wire signed [17:0] iq_c = iq_all[18 * cur_l +: 18];
    wire signed [7:0]  eq_f = eq_all[8 * NHID +: 8];
    wire [52 * LANES - 1:0] mac_flat;
    reg [32 * LANES - 1:0] tr_a;
    wire signed [63:0] tr_root;
    genvar gm;
    generate for (gm = 0; gm < LANES; gm = gm + 1) begin : lane
        wire signed [51:0] s;
        nvq1_mac mac (.clk(clk), .clr(mac_clr), .en(mac_en), .last(mac_last), .a(mac_a),
                      .b(wq[18 * gm +: 18]), .sum(s));
        assign mac_flat[52 * gm +: 52] = s;
    end endgenerate
    nvq1_tree #(.LANES(LANES)) tree (.clk(clk), .a(tr_a), .b(wq), .root(tr_root));

    // ------------------------------------------------------------------ stage datapaths (nvq1_stages.v)
    // Every state's arithmetic is a combinational stage module; the FSM below only registers
    // their outputs (one update per state) and sequences memories.
    wire [31:0] slot = nlbase + ks;
    wire signed [26:0] xin_k = xsel ? xb1[c - 1] : xb0[c - 1];
    wire signed [51:0] mac_sel = mac_flat[52 * (c - 2) +: 52];
    wire [1:0] cur_sc = sc_of(cur_l);
    wire cur_idt = idt_of(cur_l);
    wire [7:0] cur_fidt = fidt_of(cur_l);

    // §5.1 neighbour decode (S_SLOT cycles 6, 7, 8)
    wire signed [63:0] nb_r0, nb_r1, nb_r2, nb_uu;
    wire nb_inr, nb_accept, nb_close;
    wire [31:0] nb_useg;
    wire [16:0] nb_ut;
    nvq1_st_nbr #(.U_CUT(U_CUT), .K_LO(K_LO)) st_nbr (
        .cj0(cj0), .cj1(cj1), .cj2(q_xyz), .ci0(ci0), .ci1(ci1), .ci2(ci2), .sh0(sh0), .sh1(sh1), .sh2(sh2),
        .cellv({cellr[8], cellr[7], cellr[6], cellr[5], cellr[4], cellr[3], cellr[2], cellr[1], cellr[0]}),
        .sj(sj), .r0(r0), .r1(r1), .r2(r2), .inr(inr), .uu(uu),
        .nr0(nb_r0), .nr1(nb_r1), .nr2(nb_r2), .ninr(nb_inr), .nuu(nb_uu),
        .accept(nb_accept), .close(nb_close), .useg(nb_useg), .ut(nb_ut));

    // §4 Hermite coefficients for the four cubic units (s̃, h̃, G, tanh)
    wire signed [31:0] hs_a, hs_b, hs_c, hs_d, hh_a, hh_b, hh_c, hh_d;
    wire signed [31:0] hg_a, hg_b, hg_c, hg_d, ht_a, ht_b, ht_c, ht_d;
    nvq1_hermite her_s (.y0(ys0), .y1(ys1), .m0(ym0), .m1(q_ua), .a(hs_a), .b(hs_b), .c(hs_c), .d(hs_d));
    nvq1_hermite her_h (.y0(yh0), .y1(yh1), .m0(yhm0), .m1(q_ub), .a(hh_a), .b(hh_b), .c(hh_c), .d(hh_d));
    nvq1_hermite her_g (.y0(gy0), .y1(q_ga), .m0(gm0), .m1(q_gb), .a(hg_a), .b(hg_b), .c(hg_c), .d(hg_d));
    nvq1_hermite her_t (.y0(q_t0), .y1(q_t1), .m0(q_t2), .m1(q_t3), .a(ht_a), .b(ht_b), .c(ht_c), .d(ht_d));

    // §5.2 radial tables, §5.3 R̃ and the G grid position (S_UT cycle 9)
    wire signed [63:0] ra_s, ra_h;
    wire signed [31:0] ra_qs, ra_qh;
    wire ra_cs, ra_ch;
    nvq1_st_radial st_radial (.ys(ys), .yh(yh), .yps(yps), .yph(yph), .uclose(uclose),
        .s(ra_s), .h(ra_h), .qs(ra_qs), .qh(ra_qh), .clip_s(ra_cs), .clip_h(ra_ch));
    wire signed [63:0] em_R1, em_R2, em_R3;
    wire [1:0] em_nR;
    wire [31:0] em_gseg, em_gbase;
    wire [16:0] em_gtt;
    wire em_gclamp;
    nvq1_st_embed #(.NTYPES(NTYPES), .M1(M1), .NS1(NS1), .TYPE_ONE_SIDE(TYPE_ONE_SIDE), .S0(S0), .F_H(F_H)) st_embed (
        .s(ra_s), .h(ra_h), .r0(r0), .r1(r1), .r2(r2), .ti(ti), .tj(tj),
        .R1(em_R1), .R2(em_R2), .R3(em_R3), .nclip_R(em_nR),
        .gseg(em_gseg), .gtt(em_gtt), .gclamp(em_gclamp), .gbase(em_gbase));

    // §5.4 G, G' of one channel (S_G)
    wire [31:0] g_idx = (c - 7) >> 1;
    wire signed [17:0] gc_G, gc_Gq;
    wire gc_cG, gc_cGq;
    nvq1_st_gchan #(.F_GQ(F_GQ)) st_gchan (.yg(yg), .ypg(ypg), .gclamp(gclamp),
        .G(gc_G), .Gq(gc_Gq), .clip_G(gc_cG), .clip_Gq(gc_cGq));

    // §5.1 overflow, §5.5 padding (S_PAD)
    wire [31:0] pad_idx = (c - 2) % M1;
    wire [31:0] pad_n = (c - 2) / M1;
    wire pad_over;
    wire [31:0] pad_cnt;
    nvq1_st_pad #(.NTYPES(NTYPES), .SEL(SEL)) st_pad (
        .n_in({n_in[7], n_in[6], n_in[5], n_in[4], n_in[3], n_in[2], n_in[1], n_in[0]}), .n(pad_n),
        .over(pad_over), .npad(pad_cnt));

    // §5.5 T (S_T)
    wire [31:0] t_idx = c % M1;
    wire [31:0] t_n = c / M1;
    wire signed [63:0] t_acc = (t_n == 0) ? tacc0[t_idx] : (t_n == 1) ? tacc1[t_idx] :
                               (t_n == 2) ? tacc2[t_idx] : tacc3[t_idx];
    wire signed [17:0] t_T;
    wire t_clip;
    nvq1_st_t #(.F_GT(F_GT), .F_T(F_T)) st_t (.acc(t_acc), .T(t_T), .clip(t_clip));

    // §5.6 D (S_D)
    wire [31:0] d_idx = c / M2;
    wire [31:0] d_n = c % M2;
    wire signed [26:0] d_D;
    wire d_clip;
    nvq1_st_d #(.F_T(F_T), .F_D(F_D)) st_d (
        .a0(tt[d_idx]), .a1(tt[M1 + d_idx]), .a2(tt[2 * M1 + d_idx]), .a3(tt[3 * M1 + d_idx]),
        .b0(tt[d_n]), .b1(tt[M1 + d_n]), .b2(tt[2 * M1 + d_n]), .b3(tt[3 * M1 + d_n]), .D(d_D), .clip(d_clip));

    // §6.1-6.2 one fitting column: z and its tanh segment (S_POST cycles 2..), tanh, x (cycles 8..)
    wire signed [31:0] z_k = fx + eq_c - 22;
    wire signed [26:0] zc_z;
    wire zc_clip, zc_neg, zc_beyond;
    wire [31:0] zc_seg;
    wire [16:0] zc_t;
    nvq1_st_zcol st_zcol (.acc(mac_sel), .k(z_k), .bias(bq_c), .z(zc_z), .clip(zc_clip), .neg(zc_neg),
        .beyond(zc_beyond), .seg(zc_seg), .tfrac(zc_t));
    wire [31:0] x_idx = c - 8;
    wire [31:0] x_n = jb * LANES + x_idx;
    wire [31:0] x_cn = (x_n < nin_c) ? x_n : x_n - nin_c;
    wire signed [26:0] x_sc = (cur_sc == 2'd2) ? (xsel ? xb1[x_cn] : xb0[x_cn]) : (xsel ? xb1[x_n] : xb0[x_n]);
    wire signed [17:0] xc_dt;
    wire signed [26:0] xc_x;
    wire xc_cdt, xc_cx;
    nvq1_st_xcol st_xcol (.yt(yt), .ypt(ypt), .neg(narr[x_idx]), .beyond(barr[x_idx]), .idt(cur_idt),
        .fidt(cur_fidt), .iq(iarr[x_idx]), .sc_kind(cur_sc), .xsc(x_sc), .fx(fx),
        .dt(xc_dt), .clip_dt(xc_cdt), .x(xc_x), .clip_x(xc_cx));

    // §6.3 energy (S_FIN)
    wire signed [63:0] fin_acc = eacc + tr_root;
    wire signed [63:0] fin_e;
    nvq1_st_energy st_energy (.acc(fin_acc), .e(eq_f), .ec(q_ec), .E(fin_e));

    // §7.1 seed at the final layer (S_BINIT), ĝ per column (S_GH), g_x per input (S_GX)
    wire signed [31:0] sd_k = eq_f - fg_of(NHID);
    wire [27 * LANES - 1:0] sd_g;
    wire [31:0] sd_n;
    nvq1_st_seed #(.LANES(LANES)) st_seed (.w(wq), .k(sd_k), .g(sd_g), .nclip(sd_n));
    wire [31:0] gh_idx = c - 2;
    wire signed [26:0] gh_g = gsel ? gb1[gh_idx] : gb0[gh_idx];
    wire signed [31:0] gh_k = eq_c - emin[cur_l];
    wire signed [31:0] gh_v;
    nvq1_st_ghat st_ghat (.g(gh_g), .idt(cur_idt), .fidt(cur_fidt), .iq(iq_c), .dt(q_dt), .k(gh_k), .ghat(gh_v));
    wire signed [63:0] gx_acc = gacc + tr_root;
    wire signed [31:0] gx_k = fg_of(cur_l + 1) + emin[cur_l] - fg_of(cur_l);
    wire signed [31:0] gx_ksc = fg_of(cur_l + 1) - fg_of(cur_l);
    wire signed [63:0] gx_sc = (cur_sc == 2'd2) ? (gsel ? gb1[o_k] + gb1[o_k + nin_c] : gb0[o_k] + gb0[o_k + nin_c])
                                                : (gsel ? gb1[o_k] : gb0[o_k]);
    wire signed [26:0] gx_g;
    wire gx_clip;
    nvq1_st_gx st_gx (.acc(gx_acc), .k(gx_k), .sc_kind(cur_sc), .gsc(gx_sc), .ksc(gx_ksc), .g(gx_g), .clip(gx_clip));

    // §7.2 gT (S_GT): one term per cycle, the last one through the rounding unit
    wire signed [63:0] gt_term = (gn < M2) ? (gsel ? gb1[gm_ * M2 + gn] : gb0[gm_ * M2 + gn]) * tt[ga * M1 + gn]
                                           : (gsel ? gb1[(gn - M2) * M2 + gm_] : gb0[(gn - M2) * M2 + gm_]) * tt[ga * M1 + gn - M2];
    wire signed [63:0] gt_acc = gtacc + gt_term;
    wire signed [26:0] gt_gT;
    wire signed [17:0] gt_gTs;
    wire gt_c1, gt_c2;
    nvq1_st_gt #(.FG0(fg_of(0)), .F_T(F_T), .F_GTT(F_GTT)) st_gt (.acc(gt_acc), .gT(gt_gT), .gTs(gt_gTs),
        .clip_gT(gt_c1), .clip_gTs(gt_c2));

    // §7.2 gG per channel (S_PB), the per-pair chain (S_PF1..4), §7.3 assembly (S_AEND, S_FORCE)
    wire [31:0] pb_idx = c - 2;
    wire signed [26:0] gg_v;
    wire gg_c;
    nvq1_st_gg #(.F_GTT(F_GTT), .F_GG(F_GG)) st_gg (
        .t0(gts[pb_idx]), .t1(gts[M1 + pb_idx]), .t2(gts[2 * M1 + pb_idx]), .t3(gts[3 * M1 + pb_idx]),
        .R0(pR0), .R1(pR1), .R2(pR2), .R3(pR3), .gG(gg_v), .clip(gg_c));
    wire signed [63:0] pa_gR0, pa_gR1, pa_gR2, pa_gR3, pa_gs, pa_gh, pa_gu, pa_f0, pa_f1, pa_f2;
    wire signed [63:0] pa_r0, pa_r1, pa_r2;
    wire [2:0] pa_ngR;
    wire [1:0] pa_nf;
    wire pa_cgs, pa_cgh, pa_cgu;
    nvq1_st_pair #(.F_GTT(F_GTT), .F_GT(F_GT), .F_GQ(F_GQ), .F_GR(F_GR), .F_GG(F_GG), .F_GS(F_GS),
                   .F_GH(F_GH), .F_GU(F_GU), .F_H(F_H), .F_P(F_P)) st_pair (
        .gra0(gra0), .gra1(gra1), .gra2(gra2), .gra3(gra3), .gsacc(gsacc),
        .gR0(pa_gR0), .gR1(pa_gR1), .gR2(pa_gR2), .gR3(pa_gR3), .gs(pa_gs), .nclip_gR(pa_ngR), .clip_gs(pa_cgs),
        .rgR1(gR1), .rgR2(gR2), .rgR3(gR3), .r0(pr0), .r1(pr1), .r2(pr2), .gh(pa_gh), .clip_gh(pa_cgh),
        .rgs(gsv), .rgh(ghv), .qs(pqs), .qh(pqh), .gu(pa_gu), .clip_gu(pa_cgu),
        .rgu(guv), .h(ph), .f0(pa_f0), .f1(pa_f1), .f2(pa_f2), .nclip_f(pa_nf),
        .r18_0(pa_r0), .r18_1(pa_r1), .r18_2(pa_r2));
    wire signed [63:0] fo_acc = (fd_d2 == 0) ? q_fx : (fd_d2 == 1) ? q_fy : q_fz;
    wire [64 * 9 - 1:0] as_dvir;
    wire signed [31:0] as_force;
    wire as_clip;
    nvq1_st_assembly #(.F_P(F_P)) st_asm (
        .vi({vi[8], vi[7], vi[6], vi[5], vi[4], vi[3], vi[2], vi[1], vi[0]}), .dvir(as_dvir),
        .facc(fo_acc), .frc(as_force), .clip(as_clip));

    // ------------------------------------------------------------------ the schedule
    integer n;
    always @(posedge clk) begin
        mac_clr <= 1'b0; mac_en <= 1'b0; mac_last <= 1'b0;
        we_f <= 1'b0; we_re <= 1'b0; we_rf <= 1'b0; we_pg <= 1'b0; we_dt <= 1'b0;
        if (busy) cycles <= cycles + 1;
        if (wr_en && wr_sel == 3'd0 && wr_addr == 0) natoms <= wr_data[31:0];
        if (wr_en && wr_sel == 3'd0 && wr_addr == 1) kk <= wr_data[31:0];
        if (wr_en && wr_sel == 3'd3) cellr[wr_addr] <= wr_data[31:0];
        if (rst) begin
            st <= S_IDLE; done <= 1'b0; c <= 0;
        end else case (st)
        S_IDLE, S_DONE: if (start) begin
            done <= 1'b0; st <= S_INIT; c <= 0; cycles <= 0;
            for (n = 0; n < NSITES; n = n + 1) cnt[n] <= 0;
            for (n = 0; n < 9; n = n + 1) vir[n] <= 0;
            for (n = 0; n < M1; n = n + 1) begin tacc0[n] <= 0; tacc1[n] <= 0; tacc2[n] <= 0; tacc3[n] <= 0; end
            overflow <= 0; etot <= 0;
        end
        // clear the force accumulators
        S_INIT: begin
            a_f <= c; we_f <= 1'b1; wd_fx <= 0; wd_fy <= 0; wd_fz <= 0;
            c <= c + 1;
            if (c + 1 >= natoms) begin st <= S_ATOM; c <= 0; ai <= 0; nlbase <= 0; end
        end
        // coordinates and type of atom i
        S_ATOM: begin
            if (c == 0) begin
                a_xyz <= 3 * ai; a_type <= ai; ks <= 0; npairs <= 0;
                fi0 <= 0; fi1 <= 0; fi2 <= 0;
                for (n = 0; n < 9; n = n + 1) vi[n] <= 0;
                for (n = 0; n < 8; n = n + 1) n_in[n] <= 0;
            end
            if (c == 1) a_xyz <= 3 * ai + 1;
            if (c == 2) begin a_xyz <= 3 * ai + 2; ci0 <= q_xyz; ti <= q_type; end
            if (c == 3) ci1 <= q_xyz;
            c <= c + 1;
            if (c == 4) begin
                ci2 <= q_xyz; c <= 0;
                st <= (kk == 0) ? S_PAD : S_SLOT;
            end
        end
        // §5.1 one nlist slot: j, shift, coordinates of j, r, u, in-range test
        S_SLOT: begin
            c <= c + 1;
            case (c)
            0: begin a_nl <= slot; a_sh <= 3 * slot; end
            1: a_sh <= 3 * slot + 1;
            2: begin
                a_sh <= 3 * slot + 2; sj <= q_nl; sh0 <= q_sh;
                a_xyz <= 3 * q_nl[30:0]; a_type <= q_nl[30:0];
            end
            3: begin sh1 <= q_sh; a_xyz <= 3 * sj[30:0] + 1; end
            4: begin sh2 <= q_sh; a_xyz <= 3 * sj[30:0] + 2; cj0 <= q_xyz; tj <= q_type; end
            5: cj1 <= q_xyz;
            6: begin r0 <= nb_r0; r1 <= nb_r1; r2 <= nb_r2; end
            7: begin inr <= nb_inr; uu <= nb_uu; end
            8: begin
                c <= 0;
                if (nb_accept) begin
                    st <= S_UT;
                    useg <= nb_useg; ut <= nb_ut; uclose <= nb_close;
                    if (nb_close) cnt[C_CLOSE] <= cnt[C_CLOSE] + 1;
                end else if (ks + 1 == kk) begin
                    st <= S_PAD;
                end else ks <= ks + 1;
            end
            endcase
        end
        // §5.2 radial tables: s̃ on port a, h̃ on port b; Hermite coefficients; two cubic units
        S_UT: begin
            c <= c + 1;
            case (c)
            0: begin a_ua <= (ti * 4 + 0) * NU1 + useg; a_ub <= (ti * 4 + 2) * NU1 + useg; end
            1: begin a_ua <= (ti * 4 + 0) * NU1 + useg + 1; a_ub <= (ti * 4 + 2) * NU1 + useg + 1; end
            2: begin a_ua <= (ti * 4 + 1) * NU1 + useg; a_ub <= (ti * 4 + 3) * NU1 + useg;
                     ys0 <= q_ua; yh0 <= q_ub; end
            3: begin a_ua <= (ti * 4 + 1) * NU1 + useg + 1; a_ub <= (ti * 4 + 3) * NU1 + useg + 1;
                     ys1 <= q_ua; yh1 <= q_ub; end
            4: begin ym0 <= q_ua; yhm0 <= q_ub; end
            5: begin
                cs_a <= hs_a; cs_b <= hs_b; cs_c <= hs_c; cs_d <= hs_d;
                ch_a <= hh_a; ch_b <= hh_b; ch_c <= hh_c; ch_d <= hh_d;
                cs_t <= ut;
            end
            // cubic inputs registered at the end of c=5 -> outputs visible at c=9
            9: begin
                cnt[C_S] <= cnt[C_S] + ra_cs; cnt[C_H] <= cnt[C_H] + ra_ch;
                cR0 <= ra_s; cR1 <= em_R1; cR2 <= em_R2; cR3 <= em_R3;
                cnt[C_R] <= cnt[C_R] + em_nR;
                pb_j[npairs] <= sj; pb_r0[npairs] <= r0; pb_r1[npairs] <= r1; pb_r2[npairs] <= r2;
                pb_h[npairs] <= ra_h; pb_qs[npairs] <= ra_qs; pb_qh[npairs] <= ra_qh;
                pb_R0[npairs] <= ra_s; pb_R1[npairs] <= em_R1; pb_R2[npairs] <= em_R2; pb_R3[npairs] <= em_R3;
                gseg <= em_gseg; gtt <= em_gtt; gclamp <= em_gclamp; gbase <= em_gbase;
                if (em_gclamp) cnt[C_GRANGE] <= cnt[C_GRANGE] + 1;
                c <= 0; st <= S_G;
            end
            default: ;
            endcase
        end
        // §5.4 G, G' per channel (2 cycles each: Y[k], Y[k+1] on port a, M[k], M[k+1] on port b),
        // stored in the pair buffer; §5.5 T accumulation
        S_G: begin
            c <= c + 1;
            if (c < 2 * M1) begin
                a_ga <= gbase + (c >> 1) + ((c & 1) ? M1 : 0);
                a_gb <= gbase + NS1 * M1 + (c >> 1) + ((c & 1) ? M1 : 0);
            end
            if (c >= 2 && c < 2 * M1 + 2) begin
                if (((c - 2) & 1) == 0) begin gy0 <= q_ga; gm0 <= q_gb; end
                else begin cg_a <= hg_a; cg_b <= hg_b; cg_c <= hg_c; cg_d <= hg_d; cg_t <= gtt; end
            end
            // coefficients of channel m registered at the end of c = 2m+3 -> outputs at 2m+7
            if (c >= 7 && ((c - 7) & 1) == 0) begin
                cnt[C_G] <= cnt[C_G] + gc_cG;
                cnt[C_GSL] <= cnt[C_GSL] + gc_cGq;
                we_pg <= 1'b1; aw_pg <= npairs * M1 + g_idx; wd_pg <= gc_G; wd_pgq <= gc_Gq;
                tacc0[g_idx] <= tacc0[g_idx] + cR0 * gc_G;
                tacc1[g_idx] <= tacc1[g_idx] + cR1 * gc_G;
                tacc2[g_idx] <= tacc2[g_idx] + cR2 * gc_G;
                tacc3[g_idx] <= tacc3[g_idx] + cR3 * gc_G;
                if (g_idx == M1 - 1) begin
                    c <= 0; npairs <= npairs + 1; n_in[tj] <= n_in[tj] + 1;
                    if (ks + 1 == kk) st <= S_PAD;
                    else begin ks <= ks + 1; st <= S_SLOT; end
                end
            end
        end
        // §5.5 padding constants; overflow atoms (§5.1)
        S_PAD: begin
            c <= c + 1;
            if (c == 0) overflow <= overflow + pad_over;
            if (c < NTYPES * M1) a_pad <= ti * NTYPES * M1 + c;
            if (c >= 2) tacc0[pad_idx] <= tacc0[pad_idx] + $signed({1'b0, pad_cnt}) * q_pad;
            if (c == NTYPES * M1 + 1) begin c <= 0; st <= S_T; end
        end
        // §5.5 T; the accumulators are cleared for the next atom
        S_T: begin
            c <= c + 1;
            tt[c] <= t_T;
            cnt[C_T] <= cnt[C_T] + t_clip;
            if (t_n == 0) tacc0[t_idx] <= 0;
            if (t_n == 1) tacc1[t_idx] <= 0;
            if (t_n == 2) tacc2[t_idx] <= 0;
            if (t_n == 3) tacc3[t_idx] <= 0;
            if (c == 4 * M1 - 1) begin c <= 0; st <= S_D; end
        end
        // §5.6 D, flattened m*M2 + a2
        S_D: begin
            c <= c + 1;
            xb0[c] <= d_D;
            cnt[C_D] <= cnt[C_D] + d_clip;
            if (c == M1 * M2 - 1) begin
                c <= 0; st <= S_MAC; xsel <= 1'b0; cur_l <= 0; jb <= 0; fx <= F_D;
                nin_c <= nin_of(0); nout_c <= nout_of(0); nb_c <= nout_of(0) / LANES; emin_run <= 8'sd127;
            end
        end
        // §6.1 acc_j = Σ_k x_k W[k, j] for the LANES columns of block jb
        S_MAC: begin
            c <= c + 1;
            if (c == 0) mac_clr <= 1'b1;
            if (c < nin_c) a_w <= (ti * nin_c + c) * nb_c + jb;
            // weights of term k arrive at c = k + 2: the lane inputs are registered at c = k + 1
            if (c >= 1 && c <= nin_c) begin
                mac_en <= 1'b1; mac_a <= xin_k; mac_last <= (c == nin_c);
            end
            if (c == nin_c + 3) begin c <= 0; st <= S_POST; end
        end
        // §6.1-6.2 z, tanh, idt, shortcut for the block's columns (one per cycle, pipelined)
        S_POST: begin
            c <= c + 1;
            if (c < LANES) a_col <= ti * nout_c + jb * LANES + c;
            if (c >= 2 && c < LANES + 2) begin
                cnt[C_Z] <= cnt[C_Z] + zc_clip;
                if (eq_c < emin_run) emin_run <= eq_c;
                narr[c - 2] <= zc_neg; iarr[c - 2] <= iq_c; tarr[c - 2] <= zc_t; barr[c - 2] <= zc_beyond;
                if (zc_beyond) begin a_t0 <= 256; a_t1 <= 256; a_t2 <= 257; a_t3 <= 257; end
                else begin a_t0 <= zc_seg; a_t1 <= zc_seg + 1; a_t2 <= 257 + zc_seg; a_t3 <= 258 + zc_seg; end
            end
            // table words of column idx arrive at c = idx + 4: Hermite coefficients (§4); for
            // |z| >= 8 t = 0 gives y = Y[256] and the slope is forced to 0 (nvq1_st_xcol)
            if (c >= 4 && c < LANES + 4) begin
                ct_a <= ht_a; ct_b <= ht_b; ct_c <= ht_c; ct_d <= ht_d; ct_t <= tarr[c - 4];
            end
            // cubic outputs of column idx visible at c = idx + 8
            if (c >= 8 && c < LANES + 8) begin
                we_dt <= 1'b1; aw_dt <= cur_l * MAXW + x_n; wd_dt <= xc_dt;
                cnt[C_TSL] <= cnt[C_TSL] + xc_cdt;
                if (xsel) xb0[x_n] <= xc_x; else xb1[x_n] <= xc_x;
                cnt[C_X] <= cnt[C_X] + xc_cx;
                if (c == LANES + 7) begin
                    c <= 0;
                    if (jb + 1 < nb_c) begin jb <= jb + 1; st <= S_MAC; end
                    else begin
                        emin[cur_l] <= emin_run; xsel <= ~xsel; fx <= 24; jb <= 0;
                        emin_run <= 8'sd127;
                        if (cur_l + 1 < NHID) begin
                            cur_l <= cur_l + 1; st <= S_MAC;
                            nin_c <= nin_of(cur_l + 1); nout_c <= nout_of(cur_l + 1);
                            nb_c <= nout_of(cur_l + 1) / LANES;
                        end else begin
                            cur_l <= NHID; st <= S_FIN;
                            nin_c <= nin_of(NHID); nout_c <= 1; nb_c <= nin_of(NHID) / LANES;
                        end
                    end
                end
            end
        end
        // §6.3 E_i on the adder tree
        S_FIN: begin
            c <= c + 1;
            if (c == 0) begin a_col <= ti; a_ec <= ti; eacc <= 0; end
            if (c < nb_c) a_w <= ti * nb_c + c;
            // weights of block b arrive at c = b + 2 with its activations; the root at b + 2 + TL
            if (c >= 1 && c <= nb_c)
                for (n = 0; n < LANES; n = n + 1)
                    tr_a[32 * n +: 32] <= xsel ? xb1[(c - 1) * LANES + n] : xb0[(c - 1) * LANES + n];
            if (c >= 2 + TL && c < nb_c + 1 + TL) eacc <= eacc + tr_root;
            if (c == nb_c + 1 + TL) begin
                we_re <= 1'b1; a_re <= ai; wd_re <= fin_e; etot <= etot + fin_e;
                c <= 0; st <= S_BINIT;
            end
        end
        // §7.1 g at the final layer's input
        S_BINIT: begin
            c <= c + 1;
            if (c < nb_c) a_w <= ti * nb_c + c;
            if (c >= 2 && c < nb_c + 2) begin
                for (n = 0; n < LANES; n = n + 1) gb0[(c - 2) * LANES + n] <= sd_g[27 * n +: 27];
                cnt[C_GF] <= cnt[C_GF] + sd_n;
            end
            if (c == nb_c + 1) begin
                c <= 0; st <= S_GH; gsel <= 1'b0; cur_l <= NHID - 1;
                nin_c <= nin_of(NHID - 1); nout_c <= nout_of(NHID - 1); nb_c <= nout_of(NHID - 1) / LANES;
            end
        end
        // §7.1 ĝ_j per column
        S_GH: begin
            c <= c + 1;
            if (c == 0) a_col <= ti * nout_c;
            if (c < nout_c) begin a_col <= ti * nout_c + c; a_dt <= cur_l * MAXW + c; end
            if (c >= 2 && c < nout_c + 2) ghat[gh_idx] <= gh_v;
            if (c == nout_c + 1) begin
                c <= 0; st <= S_GX; i_k <= 0; i_jb <= 0; d_jb <= 0; d_jb1 <= 0; o_k <= 0; o_jb <= 0;
                n_iss <= 0; n_out <= 0; gacc <= 0;
            end
        end
        // §7.1 g_x[k] = Σ_j W[k,j] ĝ_j on the adder tree, one block of LANES columns per cycle
        S_GX: begin
            c <= c + 1;
            if (n_iss < nin_c * nb_c) begin
                a_w <= (ti * nin_c + i_k) * nb_c + i_jb;
                n_iss <= n_iss + 1;
                if (i_jb + 1 == nb_c) begin i_jb <= 0; i_k <= i_k + 1; end else i_jb <= i_jb + 1;
            end
            if (c >= 1 && c <= nin_c * nb_c) begin
                for (n = 0; n < LANES; n = n + 1) tr_a[32 * n +: 32] <= ghat[d_jb * LANES + n];
                d_jb <= (d_jb + 1 == nb_c) ? 0 : d_jb + 1;
            end
            if (c >= 2 + TL && n_out < nin_c * nb_c) begin
                n_out <= n_out + 1;
                if (o_jb + 1 == nb_c) begin
                    if (gsel) gb0[o_k] <= gx_g; else gb1[o_k] <= gx_g;
                    cnt[C_GF] <= cnt[C_GF] + gx_clip;
                    gacc <= 0; o_jb <= 0; o_k <= o_k + 1;
                    if (n_out + 1 == nin_c * nb_c) begin
                        c <= 0; gsel <= ~gsel;
                        if (cur_l == 0) begin st <= S_GT; ga <= 0; gm_ <= 0; gn <= 0; gtacc <= 0; end
                        else begin
                            st <= S_GH; cur_l <= cur_l - 1;
                            nin_c <= nin_of(cur_l - 1); nout_c <= nout_of(cur_l - 1);
                            nb_c <= nout_of(cur_l - 1) / LANES;
                        end
                    end
                end else begin
                    gacc <= gacc + tr_root; o_jb <= o_jb + 1;
                end
            end
        end
        // §7.2 gT[a,m] = Σ_a2 gD[m,a2] T[a,a2] + [m<M2] Σ_m' gD[m',m] T[a,m'], one term per cycle
        S_GT: begin
            c <= c + 1;
            if (gn + 1 == ((gm_ < M2) ? M2 + M1 : M2)) begin
                gtv[ga * M1 + gm_] <= gt_gT;
                cnt[C_GT] <= cnt[C_GT] + gt_c1;
                gts[ga * M1 + gm_] <= gt_gTs;
                cnt[C_GT18] <= cnt[C_GT18] + gt_c2;
                gtacc <= 0; gn <= 0;
                if (gm_ + 1 == M1) begin
                    gm_ <= 0;
                    if (ga == 3) begin c <= 0; pp <= 0; st <= (npairs == 0) ? S_AEND : S_PB; end
                    else ga <= ga + 1;
                end else gm_ <= gm_ + 1;
            end else begin
                gtacc <= gt_acc; gn <= gn + 1;
            end
        end
        // §7.2 per pair: gR̃ sums, gG per channel and Σ gG G' (M1 channels, one per cycle)
        S_PB: begin
            c <= c + 1;
            if (c == 0) begin
                cj <= pb_j[pp]; pr0 <= pb_r0[pp]; pr1 <= pb_r1[pp]; pr2 <= pb_r2[pp]; ph <= pb_h[pp];
                pqs <= pb_qs[pp]; pqh <= pb_qh[pp];
                pR0 <= pb_R0[pp]; pR1 <= pb_R1[pp]; pR2 <= pb_R2[pp]; pR3 <= pb_R3[pp];
                gra0 <= 0; gra1 <= 0; gra2 <= 0; gra3 <= 0; gsacc <= 0;
            end
            if (c < M1) a_pg <= pp * M1 + c;
            if (c >= 2) begin
                gra0 <= gra0 + gtv[pb_idx] * q_pg; gra1 <= gra1 + gtv[M1 + pb_idx] * q_pg;
                gra2 <= gra2 + gtv[2 * M1 + pb_idx] * q_pg; gra3 <= gra3 + gtv[3 * M1 + pb_idx] * q_pg;
                cnt[C_GG] <= cnt[C_GG] + gg_c;
                gsacc <= gsacc + gg_v * q_pgq;
            end
            if (c == M1 + 1) begin c <= 0; st <= S_PF1; end
        end
        S_PF1: begin
            gR0 <= pa_gR0; gR1 <= pa_gR1; gR2 <= pa_gR2; gR3 <= pa_gR3;
            cnt[C_GR] <= cnt[C_GR] + pa_ngR;
            gsv <= pa_gs;
            cnt[C_GS] <= cnt[C_GS] + pa_cgs;
            a_f <= cj;
            st <= S_PF2;
        end
        S_PF2: begin
            ghv <= pa_gh;
            cnt[C_GH] <= cnt[C_GH] + pa_cgh;
            st <= S_PF3;
        end
        S_PF3: begin
            guv <= pa_gu;
            cnt[C_GU] <= cnt[C_GU] + pa_cgu;
            st <= S_PF4;
        end
        // §7.3 pair force, F_acc[j] -= f (read at PF1, arrives now), F_i and V_i accumulate
        S_PF4: begin
            cnt[C_PF] <= cnt[C_PF] + pa_nf;
            we_f <= 1'b1; wd_fx <= q_fx - pa_f0; wd_fy <= q_fy - pa_f1; wd_fz <= q_fz - pa_f2;
            fi0 <= fi0 + pa_f0; fi1 <= fi1 + pa_f1; fi2 <= fi2 + pa_f2;
            vi[0] <= vi[0] + pa_f0 * pa_r0; vi[1] <= vi[1] + pa_f0 * pa_r1; vi[2] <= vi[2] + pa_f0 * pa_r2;
            vi[3] <= vi[3] + pa_f1 * pa_r0; vi[4] <= vi[4] + pa_f1 * pa_r1; vi[5] <= vi[5] + pa_f1 * pa_r2;
            vi[6] <= vi[6] + pa_f2 * pa_r0; vi[7] <= vi[7] + pa_f2 * pa_r1; vi[8] <= vi[8] + pa_f2 * pa_r2;
            if (pp + 1 == npairs) st <= S_AEND; else begin pp <= pp + 1; st <= S_PB; end
        end
        // F_acc[i] += F_i; virial[d0][d1] -= rnd(V_i[d1][d0], p + 14 - 24); next atom
        S_AEND: begin
            c <= c + 1;
            if (c == 0) a_f <= ai;
            if (c == 2) begin
                we_f <= 1'b1; wd_fx <= q_fx + fi0; wd_fy <= q_fy + fi1; wd_fz <= q_fz + fi2;
                for (n = 0; n < 9; n = n + 1) vir[n] <= vir[n] - $signed(as_dvir[64 * n +: 64]);
                c <= 0;
                if (ai + 1 == natoms) begin st <= S_FORCE; fa <= 0; fd <= 0; end
                else begin ai <= ai + 1; nlbase <= nlbase + kk; st <= S_ATOM; end
            end
        end
        // forces = sat(rnd(F_acc, p - 19), 32), one component per cycle
        S_FORCE: begin
            c <= c + 1;
            if (c < 3 * natoms) begin
                a_f <= fa;
                if (fd == 2) begin fd <= 0; fa <= fa + 1; end else fd <= fd + 1;
            end
            fd_d <= fd[1:0]; fd_d2 <= fd_d;
            if (c >= 2) begin
                we_rf <= 1'b1; a_rf <= c - 2; wd_rf <= as_force;
                cnt[C_FORCE] <= cnt[C_FORCE] + as_clip;
            end
            if (c == 3 * natoms + 1) begin st <= S_DONE; done <= 1'b1; c <= 0; end
        end
        default: st <= S_IDLE;
        endcase
    end
    // ------------------------------------------------------------------ result read port
    reg [1:0] rsel_d;
    reg [31:0] raddr_d;
    reg [63:0] scal;
    integer si;
    reg [31:0] satsum;
    always @(posedge clk) begin
        rsel_d <= rd_sel; raddr_d <= rd_addr;
        satsum = 0;
        for (si = 0; si < NSITES; si = si + 1) satsum = satsum + cnt[si];
        if (rd_addr == 0) scal <= etot;
        else if (rd_addr == 1) scal <= overflow;
        else if (rd_addr == 2) scal <= cycles;
        else if (rd_addr == 3) scal <= satsum;
        else if (rd_addr >= 8 && rd_addr < 8 + NSITES) scal <= cnt[rd_addr - 8];
        else if (rd_addr >= 32 && rd_addr < 41) scal <= vir[rd_addr - 32];
        else scal <= 0;
    end
    always @(*) begin
        case (rsel_d)
        2'd0: rd_data = scal;
        2'd1: rd_data = q_re;
        2'd2: rd_data = {{32{q_rf[31]}}, q_rf};
        default: rd_data = 64'd0;
        endcase
    end
endmodule
