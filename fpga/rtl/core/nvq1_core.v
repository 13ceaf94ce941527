// nvq1_core: the nvq1 datapath of fpga/SPEC.md §5–§7 for one frame, bit for bit as
// sim/nvq1/ref.py. Ports and parameters: fpga/rtl/core/INTERFACE.md. Schedule (one atom at a
// time, one FSM; cycle counts in fpga/rtl/core/cycles.py):
//   neighbour decode and in-range test per slot -> radial tables s̃, h̃ (§5.2) -> R̃ (§5.3) ->
//   G, G' per channel (§5.4, 2 cycles each) with T accumulation -> padding, T, D (§5.5-5.6) ->
//   fitting layers on LANES MAC lanes (§6) -> final layer and energy -> fitting backward on a
//   LANES adder tree (§7.1) -> gT -> per pair gR̃ gG gs gh gu f, force and virial (§7.2-7.3).
// Memories read with a registered address and a registered output (BRAM): data arrives two
// cycles after the FSM sets the address. Model memories come from `nvnmd quantize --emit-mem`.
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

    // ------------------------------------------------------------------ combinational helpers
    wire [31:0] slot = nlbase + ks;
    wire signed [26:0] xin_k = xsel ? xb1[c - 1] : xb0[c - 1];
    wire signed [51:0] mac_sel = mac_flat[52 * (c - 2) +: 52];

    integer n, d0, d1;
    reg signed [63:0] tmp, tmp2, zz, mag, yv, sc, xo, gz, ghv_t, e_i, f0, f1, f2;
    reg signed [63:0] ta, tb, tcc, td;
    reg [31:0] seg_t, idx, pcount, cntpad;
    reg fl0, fl1, fl2, fl3;
    reg signed [63:0] Gv, Gqv, ggv, rr18_0, rr18_1, rr18_2;

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
            6: begin
                r0 <= cj0 + sh0 * cellr[0] + sh1 * cellr[3] + sh2 * cellr[6] - ci0;
                r1 <= cj1 + sh0 * cellr[1] + sh1 * cellr[4] + sh2 * cellr[7] - ci1;
                r2 <= q_xyz + sh0 * cellr[2] + sh1 * cellr[5] + sh2 * cellr[8] - ci2;
            end
            7: begin
                inr <= (sj >= 0) && (r0 < 64'sd8388608) && (r0 > -64'sd8388608) &&
                       (r1 < 64'sd8388608) && (r1 > -64'sd8388608) &&
                       (r2 < 64'sd8388608) && (r2 > -64'sd8388608);
                uu <= r0 * r0 + r1 * r1 + r2 * r2;
            end
            8: begin
                c <= 0;
                if (inr && $unsigned(uu) < U_CUT) begin
                    st <= S_UT;
                    if ((uu >>> 37) < K_LO) begin
                        useg <= K_LO; ut <= 0; uclose <= 1'b1;
                        cnt[C_CLOSE] <= cnt[C_CLOSE] + 1;
                    end else begin
                        useg <= uu >>> 37; ut <= (uu >>> 20) & MASK17; uclose <= 1'b0;
                    end
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
                // a = 2(Y0-Y1)+M0+M1, b = 3(Y1-Y0)-2M0-M1, c = M0, d = Y0
                cs_a <= 2 * (ys0 - ys1) + ym0 + q_ua; cs_b <= 3 * (ys1 - ys0) - 2 * ym0 - q_ua;
                cs_c <= ym0; cs_d <= ys0;
                ch_a <= 2 * (yh0 - yh1) + yhm0 + q_ub; ch_b <= 3 * (yh1 - yh0) - 2 * yhm0 - q_ub;
                ch_c <= yhm0; ch_d <= yh0;
                cs_t <= ut;
            end
            // cubic inputs registered at the end of c=5 -> outputs visible at c=9
            9: begin
                tmp = sat_v(ys, 27); tmp2 = sat_v(yh, 27);
                fl0 = sat_f(ys, 27); fl1 = sat_f(yh, 27);
                cnt[C_S] <= cnt[C_S] + fl0; cnt[C_H] <= cnt[C_H] + fl1;
                cR0 <= tmp;
                f0 = rnd(tmp2 * r0, F_H + 20 - 22); f1 = rnd(tmp2 * r1, F_H + 20 - 22);
                f2 = rnd(tmp2 * r2, F_H + 20 - 22);
                cR1 <= sat_v(f0, 27); cR2 <= sat_v(f1, 27); cR3 <= sat_v(f2, 27);
                cnt[C_R] <= cnt[C_R] + sat_f(f0, 27) + sat_f(f1, 27) + sat_f(f2, 27);
                pb_j[npairs] <= sj; pb_r0[npairs] <= r0; pb_r1[npairs] <= r1; pb_r2[npairs] <= r2;
                pb_h[npairs] <= tmp2;
                pb_qs[npairs] <= uclose ? 0 : yps; pb_qh[npairs] <= uclose ? 0 : yph;
                pb_R0[npairs] <= tmp; pb_R1[npairs] <= sat_v(f0, 27);
                pb_R2[npairs] <= sat_v(f1, 27); pb_R3[npairs] <= sat_v(f2, 27);
                // §5.4 G grid position of s̃
                zz = tmp - S0;
                if ((zz >>> 17) < 0) begin
                    gseg <= 0; gtt <= 0; gclamp <= 1'b1; cnt[C_GRANGE] <= cnt[C_GRANGE] + 1;
                    seg_t = 0;
                end else if ((zz >>> 17) >= NS1 - 1) begin
                    gseg <= NS1 - 2; gtt <= MASK17; gclamp <= 1'b1; cnt[C_GRANGE] <= cnt[C_GRANGE] + 1;
                    seg_t = NS1 - 2;
                end else begin
                    gseg <= zz >>> 17; gtt <= zz & MASK17; gclamp <= 1'b0;
                    seg_t = zz >>> 17;
                end
                gbase <= ((TYPE_ONE_SIDE ? tj : ti * NTYPES + tj) * 2 * NS1 + seg_t) * M1;
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
                else begin
                    cg_a <= 2 * (gy0 - q_ga) + gm0 + q_gb; cg_b <= 3 * (q_ga - gy0) - 2 * gm0 - q_gb;
                    cg_c <= gm0; cg_d <= gy0; cg_t <= gtt;
                end
            end
            // coefficients of channel m registered at the end of c = 2m+3 -> outputs at 2m+7
            if (c >= 7 && ((c - 7) & 1) == 0) begin
                idx = (c - 7) >> 1;
                Gv = sat_v(rnd(yg, 9), 18);
                Gqv = sat_v(rnd(ypg, F_GQ), 18);
                cnt[C_G] <= cnt[C_G] + sat_f(rnd(yg, 9), 18);
                cnt[C_GSL] <= cnt[C_GSL] + sat_f(rnd(ypg, F_GQ), 18);
                if (gclamp) Gqv = 0;
                we_pg <= 1'b1; aw_pg <= npairs * M1 + idx; wd_pg <= Gv; wd_pgq <= Gqv;
                tacc0[idx] <= tacc0[idx] + cR0 * Gv;
                tacc1[idx] <= tacc1[idx] + cR1 * Gv;
                tacc2[idx] <= tacc2[idx] + cR2 * Gv;
                tacc3[idx] <= tacc3[idx] + cR3 * Gv;
                if (idx == M1 - 1) begin
                    c <= 0; npairs <= npairs + 1; n_in[tj] <= n_in[tj] + 1;
                    if (ks + 1 == kk) st <= S_PAD;
                    else begin ks <= ks + 1; st <= S_SLOT; end
                end
            end
        end
        // §5.5 padding constants; overflow atoms (§5.1)
        S_PAD: begin
            c <= c + 1;
            if (c == 0) begin
                fl0 = 0;
                for (n = 0; n < NTYPES; n = n + 1) if (n_in[n] > sel_of(n)) fl0 = 1;
                overflow <= overflow + fl0;
            end
            if (c < NTYPES * M1) a_pad <= ti * NTYPES * M1 + c;
            if (c >= 2) begin
                idx = (c - 2) % M1; n = (c - 2) / M1;
                cntpad = (n_in[n] < sel_of(n)) ? sel_of(n) - n_in[n] : 0;
                tacc0[idx] <= tacc0[idx] + $signed({1'b0, cntpad}) * q_pad;
            end
            if (c == NTYPES * M1 + 1) begin c <= 0; st <= S_T; end
        end
        // §5.5 T = sat(rnd(T_acc, 22 + (Gt-9) - T), 18); the accumulators are cleared for the next atom
        S_T: begin
            c <= c + 1;
            idx = c % M1; n = c / M1;
            tmp = (n == 0) ? tacc0[idx] : (n == 1) ? tacc1[idx] : (n == 2) ? tacc2[idx] : tacc3[idx];
            tmp2 = rnd(tmp, 22 + F_GT - 9 - F_T);
            tt[c] <= sat_v(tmp2, 18);
            cnt[C_T] <= cnt[C_T] + sat_f(tmp2, 18);
            if (n == 0) tacc0[idx] <= 0; if (n == 1) tacc1[idx] <= 0;
            if (n == 2) tacc2[idx] <= 0; if (n == 3) tacc3[idx] <= 0;
            if (c == 4 * M1 - 1) begin c <= 0; st <= S_D; end
        end
        // §5.6 D[m, a2] = sat(rnd(Σ_a T[a,m] T[a,a2], 2T - D), 27), flattened m*M2 + a2
        S_D: begin
            c <= c + 1;
            idx = c / M2; n = c % M2;
            tmp = tt[idx] * tt[n] + tt[M1 + idx] * tt[M1 + n] + tt[2 * M1 + idx] * tt[2 * M1 + n]
                  + tt[3 * M1 + idx] * tt[3 * M1 + n];
            tmp2 = rnd(tmp, 2 * F_T - F_D);
            xb0[c] <= sat_v(tmp2, 27);
            cnt[C_D] <= cnt[C_D] + sat_f(tmp2, 27);
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
                idx = c - 2;
                tmp = rnd(mac_sel, fx + eq_c - 22) + bq_c;
                zz = sat_v(tmp, 27);
                cnt[C_Z] <= cnt[C_Z] + sat_f(tmp, 27);
                if (eq_c < emin_run) emin_run <= eq_c;
                mag = (zz < 0) ? -zz : zz;
                narr[idx] <= (zz < 0);
                iarr[idx] <= iq_c;
                seg_t = mag >>> 17;
                if (seg_t >= 256) begin
                    a_t0 <= 256; a_t1 <= 256; a_t2 <= 257; a_t3 <= 257; tarr[idx] <= 0; barr[idx] <= 1'b1;
                end else begin
                    a_t0 <= seg_t; a_t1 <= seg_t + 1; a_t2 <= 257 + seg_t; a_t3 <= 258 + seg_t;
                    tarr[idx] <= mag & MASK17; barr[idx] <= 1'b0;
                end
            end
            // table words of column idx arrive at c = idx + 4: Hermite coefficients (§4); for
            // |z| >= 8 t = 0 gives y = Y[256] and the slope is forced to 0 below
            if (c >= 4 && c < LANES + 4) begin
                ct_a <= 2 * (q_t0 - q_t1) + q_t2 + q_t3; ct_b <= 3 * (q_t1 - q_t0) - 2 * q_t2 - q_t3;
                ct_c <= q_t2; ct_d <= q_t0; ct_t <= tarr[c - 4];
            end
            // cubic outputs of column idx visible at c = idx + 8
            if (c >= 8 && c < LANES + 8) begin
                idx = c - 8;
                n = jb * LANES + idx;
                tmp = rnd(yt, 1);
                if (narr[idx]) tmp = -tmp;
                tmp2 = barr[idx] ? 0 : rnd(ypt, 25 - 5 - 16);
                we_dt <= 1'b1; aw_dt <= cur_l * MAXW + n; wd_dt <= sat_v(tmp2, 18);
                cnt[C_TSL] <= cnt[C_TSL] + sat_f(tmp2, 18);
                if (idt_of(cur_l)) tmp = rnd(tmp * iarr[idx], fidt_of(cur_l));
                if (sc_of(cur_l) == 1) sc = rnd(xsel ? xb1[n] : xb0[n], fx - 24);
                else if (sc_of(cur_l) == 2) begin
                    idx = (n < nin_c) ? n : n - nin_c;
                    sc = rnd(xsel ? xb1[idx] : xb0[idx], fx - 24);
                end else sc = 0;
                xo = tmp + sc;
                if (xsel) xb0[n] <= sat_v(xo, 27); else xb1[n] <= sat_v(xo, 27);
                cnt[C_X] <= cnt[C_X] + sat_f(xo, 27);
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
        // §6.3 E_i = rnd(Σ_k x_k W[k], F_A + e - 24) + C[ti] on the adder tree
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
                e_i = rnd(eacc + tr_root, 24 + eq_f - 24) + q_ec;
                we_re <= 1'b1; a_re <= ai; wd_re <= e_i; etot <= etot + e_i;
                c <= 0; st <= S_BINIT;
            end
        end
        // §7.1 g = rnd(W_final, e - f_g[L]) at the final layer's input
        S_BINIT: begin
            c <= c + 1;
            if (c < nb_c) a_w <= ti * nb_c + c;
            if (c >= 2 && c < nb_c + 2) begin
                pcount = 0;
                for (n = 0; n < LANES; n = n + 1) begin
                    tmp = $signed(wq[18 * n +: 18]);
                    tmp2 = rnd(tmp, eq_f - fg_of(NHID));
                    pcount = pcount + sat_f(tmp2, 27);
                    gb0[(c - 2) * LANES + n] <= sat_v(tmp2, 27);
                end
                cnt[C_GF] <= cnt[C_GF] + pcount;
            end
            if (c == nb_c + 1) begin
                c <= 0; st <= S_GH; gsel <= 1'b0; cur_l <= NHID - 1;
                nin_c <= nin_of(NHID - 1); nout_c <= nout_of(NHID - 1); nb_c <= nout_of(NHID - 1) / LANES;
            end
        end
        // §7.1 ĝ_j = rnd(rnd(g_th tanh'(z), 16), e_j - min e) per column
        S_GH: begin
            c <= c + 1;
            if (c == 0) a_col <= ti * nout_c;
            if (c < nout_c) begin a_col <= ti * nout_c + c; a_dt <= cur_l * MAXW + c; end
            if (c >= 2 && c < nout_c + 2) begin
                idx = c - 2;
                tmp = gsel ? gb1[idx] : gb0[idx];
                if (idt_of(cur_l)) tmp = rnd(tmp * iq_c, fidt_of(cur_l));
                gz = rnd(tmp * q_dt, 16);
                ghat[idx] <= rnd(gz, eq_c - emin[cur_l]);
            end
            if (c == nout_c + 1) begin
                c <= 0; st <= S_GX; i_k <= 0; i_jb <= 0; d_jb <= 0; d_jb1 <= 0; o_k <= 0; o_jb <= 0;
                n_iss <= 0; n_out <= 0; gacc <= 0;
            end
        end
        // §7.1 g_x[k] = sat(rnd(Σ_j W[k,j] ĝ_j, f_g[l+1] + min e - f_g[l]) + shortcut', 27)
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
                    tmp = rnd(gacc + tr_root, fg_of(cur_l + 1) + emin[cur_l] - fg_of(cur_l));
                    if (sc_of(cur_l) == 1) sc = rnd(gsel ? gb1[o_k] : gb0[o_k], fg_of(cur_l + 1) - fg_of(cur_l));
                    else if (sc_of(cur_l) == 2)
                        sc = rnd(gsel ? gb1[o_k] + gb1[o_k + nin_c] : gb0[o_k] + gb0[o_k + nin_c],
                                 fg_of(cur_l + 1) - fg_of(cur_l));
                    else sc = 0;
                    xo = tmp + sc;
                    if (gsel) gb0[o_k] <= sat_v(xo, 27); else gb1[o_k] <= sat_v(xo, 27);
                    cnt[C_GF] <= cnt[C_GF] + sat_f(xo, 27);
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
            if (gn < M2) tmp = (gsel ? gb1[gm_ * M2 + gn] : gb0[gm_ * M2 + gn]) * tt[ga * M1 + gn];
            else tmp = (gsel ? gb1[(gn - M2) * M2 + gm_] : gb0[(gn - M2) * M2 + gm_]) * tt[ga * M1 + gn - M2];
            if (gn + 1 == ((gm_ < M2) ? M2 + M1 : M2)) begin
                tmp2 = rnd(gtacc + tmp, fg_of(0) + F_T - F_GTT);
                gtv[ga * M1 + gm_] <= sat_v(tmp2, 27);
                cnt[C_GT] <= cnt[C_GT] + sat_f(tmp2, 27);
                tmp = rnd(sat_v(tmp2, 27), 9);
                gts[ga * M1 + gm_] <= sat_v(tmp, 18);
                cnt[C_GT18] <= cnt[C_GT18] + sat_f(tmp, 18);
                gtacc <= 0; gn <= 0;
                if (gm_ + 1 == M1) begin
                    gm_ <= 0;
                    if (ga == 3) begin c <= 0; pp <= 0; st <= (npairs == 0) ? S_AEND : S_PB; end
                    else ga <= ga + 1;
                end else gm_ <= gm_ + 1;
            end else begin
                gtacc <= gtacc + tmp; gn <= gn + 1;
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
                idx = c - 2;
                gra0 <= gra0 + gtv[idx] * q_pg; gra1 <= gra1 + gtv[M1 + idx] * q_pg;
                gra2 <= gra2 + gtv[2 * M1 + idx] * q_pg; gra3 <= gra3 + gtv[3 * M1 + idx] * q_pg;
                tmp = rnd(gts[idx] * pR0 + gts[M1 + idx] * pR1 + gts[2 * M1 + idx] * pR2
                          + gts[3 * M1 + idx] * pR3, F_GTT - 9 + 22 - F_GG);
                ggv = sat_v(tmp, 27);
                cnt[C_GG] <= cnt[C_GG] + sat_f(tmp, 27);
                gsacc <= gsacc + ggv * q_pgq;
            end
            if (c == M1 + 1) begin c <= 0; st <= S_PF1; end
        end
        S_PF1: begin
            tmp = rnd(gra0, F_GTT + F_GT - 9 - F_GR); gR0 <= sat_v(tmp, 27); fl0 = sat_f(tmp, 27);
            tmp2 = rnd(gra1, F_GTT + F_GT - 9 - F_GR); gR1 <= sat_v(tmp2, 27); fl1 = sat_f(tmp2, 27);
            f0 = rnd(gra2, F_GTT + F_GT - 9 - F_GR); gR2 <= sat_v(f0, 27); fl2 = sat_f(f0, 27);
            f1 = rnd(gra3, F_GTT + F_GT - 9 - F_GR); gR3 <= sat_v(f1, 27); fl3 = sat_f(f1, 27);
            cnt[C_GR] <= cnt[C_GR] + fl0 + fl1 + fl2 + fl3;
            f2 = rnd(gsacc, F_GG + F_GT - F_GQ - 5 - F_GS) + rnd(sat_v(tmp, 27), F_GR - F_GS);
            gsv <= sat_v(f2, 27);
            cnt[C_GS] <= cnt[C_GS] + sat_f(f2, 27);
            a_f <= cj;
            st <= S_PF2;
        end
        S_PF2: begin
            tmp = rnd(gR1 * pr0 + gR2 * pr1 + gR3 * pr2, F_GR + 20 - F_GH);
            ghv <= sat_v(tmp, 27);
            cnt[C_GH] <= cnt[C_GH] + sat_f(tmp, 27);
            st <= S_PF3;
        end
        S_PF3: begin
            tmp = rnd(gsv * pqs, F_GS + 22 - 3 - F_GU) + rnd(ghv * pqh, F_GH + F_H - 3 - F_GU);
            guv <= sat_v(tmp, 27);
            cnt[C_GU] <= cnt[C_GU] + sat_f(tmp, 27);
            st <= S_PF4;
        end
        // §7.3 pair force, F_acc[j] -= f (read at PF1, arrives now), F_i and V_i accumulate
        S_PF4: begin
            tmp = rnd(2 * guv * pr0, F_GU + 20 - F_P) + rnd(gR1 * ph, F_GR + F_H - F_P);
            tmp2 = rnd(2 * guv * pr1, F_GU + 20 - F_P) + rnd(gR2 * ph, F_GR + F_H - F_P);
            gz = rnd(2 * guv * pr2, F_GU + 20 - F_P) + rnd(gR3 * ph, F_GR + F_H - F_P);
            cnt[C_PF] <= cnt[C_PF] + sat_f(tmp, 27) + sat_f(tmp2, 27) + sat_f(gz, 27);
            f0 = sat_v(tmp, 27); f1 = sat_v(tmp2, 27); f2 = sat_v(gz, 27);
            we_f <= 1'b1; wd_fx <= q_fx - f0; wd_fy <= q_fy - f1; wd_fz <= q_fz - f2;
            fi0 <= fi0 + f0; fi1 <= fi1 + f1; fi2 <= fi2 + f2;
            rr18_0 = rnd(pr0, 6); rr18_1 = rnd(pr1, 6); rr18_2 = rnd(pr2, 6);
            vi[0] <= vi[0] + f0 * rr18_0; vi[1] <= vi[1] + f0 * rr18_1; vi[2] <= vi[2] + f0 * rr18_2;
            vi[3] <= vi[3] + f1 * rr18_0; vi[4] <= vi[4] + f1 * rr18_1; vi[5] <= vi[5] + f1 * rr18_2;
            vi[6] <= vi[6] + f2 * rr18_0; vi[7] <= vi[7] + f2 * rr18_1; vi[8] <= vi[8] + f2 * rr18_2;
            if (pp + 1 == npairs) st <= S_AEND; else begin pp <= pp + 1; st <= S_PB; end
        end
        // F_acc[i] += F_i; virial[d0][d1] -= rnd(V_i[d1][d0], p + 14 - 24); next atom
        S_AEND: begin
            c <= c + 1;
            if (c == 0) a_f <= ai;
            if (c == 2) begin
                we_f <= 1'b1; wd_fx <= q_fx + fi0; wd_fy <= q_fy + fi1; wd_fz <= q_fz + fi2;
                for (d0 = 0; d0 < 3; d0 = d0 + 1)
                    for (d1 = 0; d1 < 3; d1 = d1 + 1)
                        vir[3 * d0 + d1] <= vir[3 * d0 + d1] - rnd(vi[3 * d1 + d0], F_P + 14 - 24);
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
                tmp = (fd_d2 == 0) ? q_fx : (fd_d2 == 1) ? q_fy : q_fz;
                tmp2 = rnd(tmp, F_P - 19);
                we_rf <= 1'b1; a_rf <= c - 2; wd_rf <= sat_v(tmp2, 32);
                cnt[C_FORCE] <= cnt[C_FORCE] + sat_f(tmp2, 32);
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
