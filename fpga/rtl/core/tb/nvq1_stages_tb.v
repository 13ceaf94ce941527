// Test bench of nvq1_stages.v for tests/rtl/test_core_stages.py (Icarus, cocotb): every stage
// module with the core's parameters, inputs as registers cocotb writes, outputs as wires. The
// stages that follow a table read have their Hermite unit and cubic unit in front, exactly as in
// nvq1_core (table words in, stage result out 3 clocks later). Clock generated here.
`timescale 1ns/1ps
module nvq1_stages_tb #(
    parameter LANES = 8, parameter NTYPES = 4, parameter M1 = 32, parameter NS1 = 303,
    parameter TYPE_ONE_SIDE = 1, parameter [63:0] SEL = 0, parameter [63:0] U_CUT = 0,
    parameter K_LO = 0, parameter S0 = 0,
    parameter F_H = 0, parameter F_GT = 0, parameter F_GQ = 0, parameter F_T = 0, parameter F_D = 0,
    parameter F_GTT = 0, parameter F_GR = 0, parameter F_GG = 0, parameter F_GS = 0,
    parameter F_GH = 0, parameter F_GU = 0, parameter F_P = 0, parameter FG0 = 0
) ();
    reg clk = 1'b0;
    always #5 clk = ~clk;

    // §5.1 neighbour decode
    reg signed [31:0] nb_cj0, nb_cj1, nb_cj2, nb_ci0, nb_ci1, nb_ci2, nb_sj;
    reg signed [7:0] nb_sh0, nb_sh1, nb_sh2;
    reg [32 * 9 - 1:0] nb_cell;
    reg signed [63:0] nb_r0, nb_r1, nb_r2, nb_uu;
    reg nb_inr;
    wire signed [63:0] nb_nr0, nb_nr1, nb_nr2, nb_nuu;
    wire nb_ninr, nb_accept, nb_close;
    wire [31:0] nb_useg;
    wire [16:0] nb_ut;
    nvq1_st_nbr #(.U_CUT(U_CUT), .K_LO(K_LO)) st_nbr (
        .cj0(nb_cj0), .cj1(nb_cj1), .cj2(nb_cj2), .ci0(nb_ci0), .ci1(nb_ci1), .ci2(nb_ci2),
        .sh0(nb_sh0), .sh1(nb_sh1), .sh2(nb_sh2), .cellv(nb_cell), .sj(nb_sj),
        .r0(nb_r0), .r1(nb_r1), .r2(nb_r2), .inr(nb_inr), .uu(nb_uu),
        .nr0(nb_nr0), .nr1(nb_nr1), .nr2(nb_nr2), .ninr(nb_ninr), .nuu(nb_nuu),
        .accept(nb_accept), .close(nb_close), .useg(nb_useg), .ut(nb_ut));

    // §5.2 radial tables: table words -> Hermite -> cubic -> s̃, h̃
    reg signed [26:0] ra_sy0, ra_sy1, ra_sm0, ra_sm1, ra_hy0, ra_hy1, ra_hm0, ra_hm1;
    reg [16:0] ra_t;
    reg ra_uclose;
    wire signed [31:0] hs_a, hs_b, hs_c, hs_d, hh_a, hh_b, hh_c, hh_d;
    wire signed [63:0] ys, yps, yh, yph;
    nvq1_hermite her_s (.y0(ra_sy0), .y1(ra_sy1), .m0(ra_sm0), .m1(ra_sm1), .a(hs_a), .b(hs_b), .c(hs_c), .d(hs_d));
    nvq1_hermite her_h (.y0(ra_hy0), .y1(ra_hy1), .m0(ra_hm0), .m1(ra_hm1), .a(hh_a), .b(hh_b), .c(hh_c), .d(hh_d));
    nvq1_cubic cub_s (.clk(clk), .a(hs_a), .b(hs_b), .c(hs_c), .d(hs_d), .t(ra_t), .y(ys), .yp(yps));
    nvq1_cubic cub_h (.clk(clk), .a(hh_a), .b(hh_b), .c(hh_c), .d(hh_d), .t(ra_t), .y(yh), .yp(yph));
    wire signed [63:0] ra_s, ra_h;
    wire signed [31:0] ra_qs, ra_qh;
    wire ra_cs, ra_ch;
    nvq1_st_radial st_radial (.ys(ys), .yh(yh), .yps(yps), .yph(yph), .uclose(ra_uclose),
        .s(ra_s), .h(ra_h), .qs(ra_qs), .qh(ra_qh), .clip_s(ra_cs), .clip_h(ra_ch));

    // §5.3-5.4 R̃, G grid position; one G channel: table words -> Hermite -> cubic -> G, G'
    reg signed [63:0] em_s, em_h, em_r0, em_r1, em_r2;
    reg [3:0] em_ti, em_tj;
    wire signed [63:0] em_R1, em_R2, em_R3;
    wire [1:0] em_nR;
    wire [31:0] em_gseg, em_gbase;
    wire [16:0] em_gtt;
    wire em_gclamp;
    nvq1_st_embed #(.NTYPES(NTYPES), .M1(M1), .NS1(NS1), .TYPE_ONE_SIDE(TYPE_ONE_SIDE), .S0(S0), .F_H(F_H)) st_embed (
        .s(em_s), .h(em_h), .r0(em_r0), .r1(em_r1), .r2(em_r2), .ti(em_ti), .tj(em_tj),
        .R1(em_R1), .R2(em_R2), .R3(em_R3), .nclip_R(em_nR),
        .gseg(em_gseg), .gtt(em_gtt), .gclamp(em_gclamp), .gbase(em_gbase));
    reg signed [26:0] gc_y0, gc_y1, gc_m0, gc_m1;
    wire signed [31:0] hg_a, hg_b, hg_c, hg_d;
    wire signed [63:0] yg, ypg;
    nvq1_hermite her_g (.y0(gc_y0), .y1(gc_y1), .m0(gc_m0), .m1(gc_m1), .a(hg_a), .b(hg_b), .c(hg_c), .d(hg_d));
    nvq1_cubic cub_g (.clk(clk), .a(hg_a), .b(hg_b), .c(hg_c), .d(hg_d), .t(em_gtt), .y(yg), .yp(ypg));
    wire signed [17:0] gc_G, gc_Gq;
    wire gc_cG, gc_cGq;
    nvq1_st_gchan #(.F_GQ(F_GQ)) st_gchan (.yg(yg), .ypg(ypg), .gclamp(em_gclamp),
        .G(gc_G), .Gq(gc_Gq), .clip_G(gc_cG), .clip_Gq(gc_cGq));

    // §5.1/5.5 padding, §5.5 T, §5.6 D
    reg [63:0] pad_nin;
    reg [31:0] pad_n;
    wire pad_over;
    wire [31:0] pad_cnt;
    nvq1_st_pad #(.NTYPES(NTYPES), .SEL(SEL)) st_pad (.n_in(pad_nin), .n(pad_n), .over(pad_over), .npad(pad_cnt));
    reg signed [63:0] t_acc;
    wire signed [17:0] t_T;
    wire t_clip;
    nvq1_st_t #(.F_GT(F_GT), .F_T(F_T)) st_t (.acc(t_acc), .T(t_T), .clip(t_clip));
    reg signed [17:0] d_a0, d_a1, d_a2, d_a3, d_b0, d_b1, d_b2, d_b3;
    wire signed [26:0] d_D;
    wire d_clip;
    nvq1_st_d #(.F_T(F_T), .F_D(F_D)) st_d (.a0(d_a0), .a1(d_a1), .a2(d_a2), .a3(d_a3),
        .b0(d_b0), .b1(d_b1), .b2(d_b2), .b3(d_b3), .D(d_D), .clip(d_clip));

    // §6 one fitting column: z -> tanh table words -> Hermite -> cubic -> tanh, x; energy
    reg signed [51:0] zc_acc;
    reg signed [31:0] zc_k;
    reg signed [26:0] zc_bias;
    wire signed [26:0] zc_z;
    wire zc_clip, zc_neg, zc_beyond;
    wire [31:0] zc_seg;
    wire [16:0] zc_t;
    nvq1_st_zcol st_zcol (.acc(zc_acc), .k(zc_k), .bias(zc_bias), .z(zc_z), .clip(zc_clip), .neg(zc_neg),
        .beyond(zc_beyond), .seg(zc_seg), .tfrac(zc_t));
    reg signed [26:0] th_y0, th_y1, th_m0, th_m1;
    wire signed [31:0] ht_a, ht_b, ht_c, ht_d;
    wire signed [63:0] yt, ypt;
    nvq1_hermite her_t (.y0(th_y0), .y1(th_y1), .m0(th_m0), .m1(th_m1), .a(ht_a), .b(ht_b), .c(ht_c), .d(ht_d));
    nvq1_cubic cub_t (.clk(clk), .a(ht_a), .b(ht_b), .c(ht_c), .d(ht_d), .t(zc_t), .y(yt), .yp(ypt));
    reg xc_idt;
    reg [7:0] xc_fidt;
    reg signed [17:0] xc_iq;
    reg [1:0] xc_sc;
    reg signed [26:0] xc_xsc;
    reg signed [31:0] xc_fx;
    wire signed [17:0] xc_dt;
    wire signed [26:0] xc_x;
    wire xc_cdt, xc_cx;
    nvq1_st_xcol st_xcol (.yt(yt), .ypt(ypt), .neg(zc_neg), .beyond(zc_beyond), .idt(xc_idt), .fidt(xc_fidt),
        .iq(xc_iq), .sc_kind(xc_sc), .xsc(xc_xsc), .fx(xc_fx), .dt(xc_dt), .clip_dt(xc_cdt), .x(xc_x), .clip_x(xc_cx));
    reg signed [63:0] en_acc;
    reg signed [7:0] en_e;
    reg signed [47:0] en_c;
    wire signed [63:0] en_E;
    nvq1_st_energy st_energy (.acc(en_acc), .e(en_e), .ec(en_c), .E(en_E));

    // §7.1 seed, ĝ, g_x
    reg [18 * LANES - 1:0] sd_w;
    reg signed [31:0] sd_k;
    wire [27 * LANES - 1:0] sd_g;
    wire [31:0] sd_n;
    nvq1_st_seed #(.LANES(LANES)) st_seed (.w(sd_w), .k(sd_k), .g(sd_g), .nclip(sd_n));
    reg signed [26:0] gh_g;
    reg gh_idt;
    reg [7:0] gh_fidt;
    reg signed [17:0] gh_iq, gh_dt;
    reg signed [31:0] gh_k;
    wire signed [31:0] gh_v;
    nvq1_st_ghat st_ghat (.g(gh_g), .idt(gh_idt), .fidt(gh_fidt), .iq(gh_iq), .dt(gh_dt), .k(gh_k), .ghat(gh_v));
    reg signed [63:0] gx_acc, gx_sc;
    reg signed [31:0] gx_k, gx_ksc;
    reg [1:0] gx_kind;
    wire signed [26:0] gx_g;
    wire gx_clip;
    nvq1_st_gx st_gx (.acc(gx_acc), .k(gx_k), .sc_kind(gx_kind), .gsc(gx_sc), .ksc(gx_ksc), .g(gx_g), .clip(gx_clip));

    // §7.2 gT, gG, the per-pair chain; §7.3 assembly
    reg signed [63:0] gt_acc;
    wire signed [26:0] gt_gT;
    wire signed [17:0] gt_gTs;
    wire gt_c1, gt_c2;
    nvq1_st_gt #(.FG0(FG0), .F_T(F_T), .F_GTT(F_GTT)) st_gt (.acc(gt_acc), .gT(gt_gT), .gTs(gt_gTs),
        .clip_gT(gt_c1), .clip_gTs(gt_c2));
    reg signed [17:0] gg_t0, gg_t1, gg_t2, gg_t3;
    reg signed [63:0] gg_R0, gg_R1, gg_R2, gg_R3;
    wire signed [26:0] gg_v;
    wire gg_c;
    nvq1_st_gg #(.F_GTT(F_GTT), .F_GG(F_GG)) st_gg (.t0(gg_t0), .t1(gg_t1), .t2(gg_t2), .t3(gg_t3),
        .R0(gg_R0), .R1(gg_R1), .R2(gg_R2), .R3(gg_R3), .gG(gg_v), .clip(gg_c));
    reg signed [63:0] pa_gra0, pa_gra1, pa_gra2, pa_gra3, pa_gsacc;
    reg signed [63:0] pa_rgR1, pa_rgR2, pa_rgR3, pa_r0, pa_r1, pa_r2, pa_rgs, pa_rgh, pa_qs, pa_qh, pa_rgu, pa_h;
    wire signed [63:0] pa_gR0, pa_gR1, pa_gR2, pa_gR3, pa_gs, pa_gh, pa_gu, pa_f0, pa_f1, pa_f2;
    wire signed [63:0] pa_r18_0, pa_r18_1, pa_r18_2;
    wire [2:0] pa_ngR;
    wire [1:0] pa_nf;
    wire pa_cgs, pa_cgh, pa_cgu;
    nvq1_st_pair #(.F_GTT(F_GTT), .F_GT(F_GT), .F_GQ(F_GQ), .F_GR(F_GR), .F_GG(F_GG), .F_GS(F_GS),
                   .F_GH(F_GH), .F_GU(F_GU), .F_H(F_H), .F_P(F_P)) st_pair (
        .gra0(pa_gra0), .gra1(pa_gra1), .gra2(pa_gra2), .gra3(pa_gra3), .gsacc(pa_gsacc),
        .gR0(pa_gR0), .gR1(pa_gR1), .gR2(pa_gR2), .gR3(pa_gR3), .gs(pa_gs), .nclip_gR(pa_ngR), .clip_gs(pa_cgs),
        .rgR1(pa_rgR1), .rgR2(pa_rgR2), .rgR3(pa_rgR3), .r0(pa_r0), .r1(pa_r1), .r2(pa_r2), .gh(pa_gh), .clip_gh(pa_cgh),
        .rgs(pa_rgs), .rgh(pa_rgh), .qs(pa_qs), .qh(pa_qh), .gu(pa_gu), .clip_gu(pa_cgu),
        .rgu(pa_rgu), .h(pa_h), .f0(pa_f0), .f1(pa_f1), .f2(pa_f2), .nclip_f(pa_nf),
        .r18_0(pa_r18_0), .r18_1(pa_r18_1), .r18_2(pa_r18_2));
    reg [64 * 9 - 1:0] as_vi;
    reg signed [63:0] as_facc;
    wire [64 * 9 - 1:0] as_dvir;
    wire signed [31:0] as_force;
    wire as_clip;
    nvq1_st_assembly #(.F_P(F_P)) st_asm (.vi(as_vi), .dvir(as_dvir), .facc(as_facc), .frc(as_force), .clip(as_clip));
endmodule
