// nvq1_stages: the arithmetic of every stage of nvq1_core's schedule (fpga/SPEC.md §5–§7) as
// small combinational modules; nvq1_core keeps only the control and one registered update per
// state. Each module is the step of sim/nvq1/stages.py named beside it, on one slot, channel,
// column or term; tests/rtl/test_core_stages.py holds each to that Python stage on random
// vectors, including saturating ones, and the clip flags to its counters (sites.py).
// Why modules: rounding and saturation inlined into the one FSM process made yosys's proc_mux
// intractable (fpga/rtl/README.md); each module here is one small process.
// Widths follow the core's registers: 64-bit signed intermediates (SPEC §2.3).

// §4 Hermite coefficients of one segment: a = 2(Y0-Y1)+M0+M1, b = 3(Y1-Y0)-2M0-M1, c = M0, d = Y0
module nvq1_hermite (
    input  wire signed [26:0] y0, y1, m0, m1,
    output wire signed [31:0] a, b, c, d
);
    assign a = 2 * (y0 - y1) + m0 + m1;
    assign b = 3 * (y1 - y0) - 2 * m0 - m1;
    assign c = m0;
    assign d = y0;
endmodule

// §5.1 (Stages.neighbours) one nlist slot: r = x_j + shift·cell - x_i (cycle 6), the in-range
// test and u = |r|² (cycle 7), u's table segment and offset with the close-contact clamp (cycle 8)
module nvq1_st_nbr #(
    parameter [63:0] U_CUT = 0,
    parameter K_LO = 0
) (
    input  wire signed [31:0] cj0, cj1, cj2, ci0, ci1, ci2,
    input  wire signed [7:0]  sh0, sh1, sh2,
    input  wire [32 * 9 - 1:0] cellv,         // rows are box vectors: cellv[3e + d]
    input  wire signed [31:0] sj,             // neighbour index (-1: empty slot)
    input  wire signed [63:0] r0, r1, r2,     // registered r (cycle 7)
    input  wire               inr,            // registered in-range flag (cycle 8)
    input  wire signed [63:0] uu,             // registered u (cycle 8)
    output wire signed [63:0] nr0, nr1, nr2,
    output wire               ninr,
    output wire signed [63:0] nuu,
    output wire               accept,         // in range and u < u_cut: the slot is a pair
    output wire               close,          // below the first table segment (counter close_contact)
    output wire [31:0]        useg,
    output wire [16:0]        ut
);
    wire signed [31:0] c0 = cellv[0 +: 32], c1 = cellv[32 +: 32], c2 = cellv[64 +: 32];
    wire signed [31:0] c3 = cellv[96 +: 32], c4 = cellv[128 +: 32], c5 = cellv[160 +: 32];
    wire signed [31:0] c6 = cellv[192 +: 32], c7 = cellv[224 +: 32], c8 = cellv[256 +: 32];
    assign nr0 = cj0 + sh0 * c0 + sh1 * c3 + sh2 * c6 - ci0;
    assign nr1 = cj1 + sh0 * c1 + sh1 * c4 + sh2 * c7 - ci1;
    assign nr2 = cj2 + sh0 * c2 + sh1 * c5 + sh2 * c8 - ci2;
    assign ninr = (sj >= 0) && (r0 < 64'sd8388608) && (r0 > -64'sd8388608) &&
                  (r1 < 64'sd8388608) && (r1 > -64'sd8388608) &&
                  (r2 < 64'sd8388608) && (r2 > -64'sd8388608);
    assign nuu = r0 * r0 + r1 * r1 + r2 * r2;
    assign accept = inr && ($unsigned(uu) < U_CUT);
    assign close = (uu >>> 37) < K_LO;
    wire signed [63:0] seg = uu >>> 37;
    wire signed [63:0] frac = (uu >>> 20) & 17'h1ffff;
    assign useg = close ? K_LO : seg[31:0];
    assign ut = close ? 17'd0 : frac[16:0];
endmodule

// §5.2 (Stages.radial_tables): s̃ and h̃ from the two cubic units, saturated to 27 bits; their
// slopes (0 at a close contact)
module nvq1_st_radial (
    input  wire signed [63:0] ys, yh, yps, yph,
    input  wire               uclose,
    output reg  signed [63:0] s, h,
    output wire signed [31:0] qs, qh,
    output reg                clip_s, clip_h
);
`include "nvq1_fn.vh"
    always @(*) begin
        s = sat_v(ys, 27); h = sat_v(yh, 27);
        clip_s = sat_f(ys, 27); clip_h = sat_f(yh, 27);
    end
    assign qs = uclose ? 32'sd0 : yps[31:0];
    assign qh = uclose ? 32'sd0 : yph[31:0];
endmodule

// §5.3–5.4 (Stages.embedding, per slot): R̃_d = sat(rnd(h̃ r_d, h + 20 - 22), 27) and the G grid
// position of s̃ (segment, offset, clamp: counter g_range) with the G table row's base address
module nvq1_st_embed #(
    parameter NTYPES = 4, parameter M1 = 32, parameter NS1 = 303, parameter TYPE_ONE_SIDE = 1,
    parameter S0 = 0, parameter F_H = 0
) (
    input  wire signed [63:0] s, h, r0, r1, r2,
    input  wire [3:0]         ti, tj,
    output reg  signed [63:0] R1, R2, R3,
    output reg  [1:0]         nclip_R,
    output reg  [31:0]        gseg,
    output reg  [16:0]        gtt,
    output reg                gclamp,
    output reg  [31:0]        gbase
);
`include "nvq1_fn.vh"
    reg signed [63:0] f0, f1, f2, zz;
    reg [31:0] seg_t;
    always @(*) begin
        f0 = rnd(h * r0, F_H + 20 - 22); f1 = rnd(h * r1, F_H + 20 - 22); f2 = rnd(h * r2, F_H + 20 - 22);
        R1 = sat_v(f0, 27); R2 = sat_v(f1, 27); R3 = sat_v(f2, 27);
        nclip_R = sat_f(f0, 27) + sat_f(f1, 27) + sat_f(f2, 27);
        zz = s - S0;
        if ((zz >>> 17) < 0) begin
            gseg = 0; gtt = 0; gclamp = 1'b1; seg_t = 0;
        end else if ((zz >>> 17) >= NS1 - 1) begin
            gseg = NS1 - 2; gtt = 17'h1ffff; gclamp = 1'b1; seg_t = NS1 - 2;
        end else begin
            gseg = zz >>> 17; gtt = zz & 17'h1ffff; gclamp = 1'b0; seg_t = zz >>> 17;
        end
        gbase = ((TYPE_ONE_SIDE ? tj : ti * NTYPES + tj) * 2 * NS1 + seg_t) * M1;
    end
endmodule

// §5.4 (Stages.embedding, per channel): G = sat(rnd(y, 9), 18), G' = sat(rnd(y', Gq), 18),
// G' = 0 where the slot is clamped (after counting)
module nvq1_st_gchan #(parameter F_GQ = 0) (
    input  wire signed [63:0] yg, ypg,
    input  wire               gclamp,
    output reg  signed [17:0] G, Gq,
    output reg                clip_G, clip_Gq
);
`include "nvq1_fn.vh"
    reg signed [63:0] a, b;
    always @(*) begin
        a = rnd(yg, 9); b = rnd(ypg, F_GQ);
        G = sat_v(a, 18); Gq = gclamp ? 18'sd0 : sat_v(b, 18);
        clip_G = sat_f(a, 18); clip_Gq = sat_f(b, 18);
    end
endmodule

// §5.1/§5.5 (Stages.neighbours' overflow, Stages.descriptor's padding): overflow atom flag and
// the number of padded slots of neighbour type n
module nvq1_st_pad #(parameter NTYPES = 4, parameter [63:0] SEL = 0) (
    input  wire [63:0] n_in,       // 8 bits per type
    input  wire [31:0] n,
    output reg         over,
    output reg  [31:0] npad
);
    function integer sel_of; input integer t; sel_of = (SEL >> (8 * t)) & 64'hff; endfunction
    integer t;
    reg [7:0] cn;
    always @(*) begin
        over = 1'b0;
        for (t = 0; t < NTYPES; t = t + 1) if (n_in[8 * t +: 8] > sel_of(t)) over = 1'b1;
        cn = n_in[8 * n[2:0] +: 8];
        npad = (cn < sel_of(n)) ? sel_of(n) - cn : 0;
    end
endmodule

// §5.5 (Stages.descriptor): T = sat(rnd(T_acc, 22 + (Gt-9) - T), 18)
module nvq1_st_t #(parameter F_GT = 0, parameter F_T = 0) (
    input  wire signed [63:0] acc,
    output reg  signed [17:0] T,
    output reg                clip
);
`include "nvq1_fn.vh"
    reg signed [63:0] v;
    always @(*) begin
        v = rnd(acc, 22 + F_GT - 9 - F_T);
        T = sat_v(v, 18); clip = sat_f(v, 18);
    end
endmodule

// §5.6 (Stages.descriptor): D[m, a2] = sat(rnd(Σ_a T[a,m] T[a,a2], 2T - D), 27)
module nvq1_st_d #(parameter F_T = 0, parameter F_D = 0) (
    input  wire signed [17:0] a0, a1, a2, a3, b0, b1, b2, b3,
    output reg  signed [26:0] D,
    output reg                clip
);
`include "nvq1_fn.vh"
    reg signed [63:0] acc, v;
    always @(*) begin
        acc = a0 * b0 + a1 * b1 + a2 * b2 + a3 * b3;
        v = rnd(acc, 2 * F_T - F_D);
        D = sat_v(v, 27); clip = sat_f(v, 27);
    end
endmodule

// §6.1–6.2 (Stages.fitting_forward, per column, first half): z = sat(rnd(acc, k) + b, 27) and
// the tanh table segment of |z| (beyond: |z| ≥ 8, the last table value with slope 0)
module nvq1_st_zcol (
    input  wire signed [51:0] acc,
    input  wire signed [31:0] k,      // fx + e_j - 22
    input  wire signed [26:0] bias,
    output reg  signed [26:0] z,
    output reg                clip,
    output reg                neg,
    output reg                beyond,
    output reg  [31:0]        seg,
    output reg  [16:0]        tfrac
);
`include "nvq1_fn.vh"
    reg signed [63:0] v, zz, mag;
    reg [31:0] seg_t;
    always @(*) begin
        v = rnd(acc, k) + bias;
        zz = sat_v(v, 27);
        z = zz; clip = sat_f(v, 27);
        mag = (zz < 0) ? -zz : zz;
        neg = (zz < 0);
        seg_t = mag >>> 17;
        beyond = (seg_t >= 256);
        seg = seg_t;
        tfrac = beyond ? 17'd0 : mag & 17'h1ffff;
    end
endmodule

// §6.1–6.2 (Stages.fitting_forward, per column, second half): tanh and tanh' from the tanh cubic
// unit, idt, shortcut, x = sat(y + shortcut, 27) (counters tanh_slope, x)
module nvq1_st_xcol (
    input  wire signed [63:0] yt, ypt,
    input  wire               neg, beyond,
    input  wire               idt,
    input  wire [7:0]         fidt,
    input  wire signed [17:0] iq,
    input  wire [1:0]         sc_kind,    // 0 none, 1 identity, 2 concat
    input  wire signed [26:0] xsc,        // the input activation the shortcut adds
    input  wire signed [31:0] fx,         // fraction of the layer's input
    output reg  signed [17:0] dt,
    output reg                clip_dt,
    output reg  signed [26:0] x,
    output reg                clip_x
);
`include "nvq1_fn.vh"
    reg signed [63:0] th, d, sc, xo;
    always @(*) begin
        th = rnd(yt, 1);
        if (neg) th = -th;
        d = beyond ? 64'sd0 : rnd(ypt, 25 - 5 - 16);
        dt = sat_v(d, 18); clip_dt = sat_f(d, 18);
        if (idt) th = rnd(th * iq, fidt);
        if (sc_kind == 2'd1 || sc_kind == 2'd2) sc = rnd(xsc, fx - 24);
        else sc = 0;
        xo = th + sc;
        x = sat_v(xo, 27); clip_x = sat_f(xo, 27);
    end
endmodule

// §6.3 (Stages.fitting_forward, final layer): E_i = rnd(Σ x W, F_A + e - 24) + C[ti]
module nvq1_st_energy (
    input  wire signed [63:0] acc,
    input  wire signed [7:0]  e,
    input  wire signed [47:0] ec,
    output reg  signed [63:0] E
);
`include "nvq1_fn.vh"
    always @(*) E = rnd(acc, 24 + e - 24) + ec;
endmodule

// §7.1 start (arith.gradient_seeds): g = sat(rnd(W_final, e - f_g[L]), 27) on LANES weights
module nvq1_st_seed #(parameter LANES = 8) (
    input  wire [18 * LANES - 1:0] w,
    input  wire signed [31:0]      k,
    output reg  [27 * LANES - 1:0] g,
    output reg  [31:0]             nclip
);
`include "nvq1_fn.vh"
    integer n;
    reg signed [63:0] v;
    always @(*) begin
        nclip = 0; g = 0;
        for (n = 0; n < LANES; n = n + 1) begin
            v = rnd($signed(w[18 * n +: 18]), k);
            nclip = nclip + sat_f(v, 27);
            g[27 * n +: 27] = sat_v(v, 27);
        end
    end
endmodule

// §7.1 (Stages.fitting_backward, per column): ĝ_j = rnd(rnd(g_th tanh'(z), 16), e_j - min e)
module nvq1_st_ghat (
    input  wire signed [26:0] g,
    input  wire               idt,
    input  wire [7:0]         fidt,
    input  wire signed [17:0] iq,
    input  wire signed [17:0] dt,
    input  wire signed [31:0] k,      // e_j - min e
    output wire signed [31:0] ghat
);
`include "nvq1_fn.vh"
    reg signed [63:0] t, gz, gh;
    always @(*) begin
        t = g;
        if (idt) t = rnd(t * iq, fidt);
        gz = rnd(t * dt, 16);
        gh = rnd(gz, k);
    end
    assign ghat = gh[31:0];
endmodule

// §7.1 (Stages.fitting_backward, per input): g_x = sat(rnd(Σ W ĝ, f_g[l+1] + min e - f_g[l])
// + shortcut', 27) (counter g)
module nvq1_st_gx (
    input  wire signed [63:0] acc,
    input  wire signed [31:0] k,
    input  wire [1:0]         sc_kind,
    input  wire signed [63:0] gsc,    // g[k] (identity) or g[k] + g[k + nin] (concat)
    input  wire signed [31:0] ksc,    // f_g[l+1] - f_g[l]
    output reg  signed [26:0] g,
    output reg                clip
);
`include "nvq1_fn.vh"
    reg signed [63:0] sc, xo;
    always @(*) begin
        if (sc_kind == 2'd1 || sc_kind == 2'd2) sc = rnd(gsc, ksc);
        else sc = 0;
        xo = rnd(acc, k) + sc;
        g = sat_v(xo, 27); clip = sat_f(xo, 27);
    end
endmodule

// §7.2 (Stages.descriptor_backward): gT = sat(rnd(gT_acc, f_g0 + T - gT), 27), gTs = sat(rnd(gT, 9), 18)
module nvq1_st_gt #(parameter FG0 = 0, parameter F_T = 0, parameter F_GTT = 0) (
    input  wire signed [63:0] acc,
    output reg  signed [26:0] gT,
    output reg  signed [17:0] gTs,
    output reg                clip_gT, clip_gTs
);
`include "nvq1_fn.vh"
    reg signed [63:0] v, w;
    always @(*) begin
        v = rnd(acc, FG0 + F_T - F_GTT);
        gT = sat_v(v, 27); clip_gT = sat_f(v, 27);
        w = rnd(sat_v(v, 27), 9);
        gTs = sat_v(w, 18); clip_gTs = sat_f(w, 18);
    end
endmodule

// §7.2 (Stages.descriptor_backward, per slot and channel): gG = sat(rnd(Σ_a gTs[a] R̃[a], gT - 9 + 22 - gG), 27)
module nvq1_st_gg #(parameter F_GTT = 0, parameter F_GG = 0) (
    input  wire signed [17:0] t0, t1, t2, t3,
    input  wire signed [63:0] R0, R1, R2, R3,
    output reg  signed [26:0] gG,
    output reg                clip
);
`include "nvq1_fn.vh"
    reg signed [63:0] v;
    always @(*) begin
        v = rnd(t0 * R0 + t1 * R1 + t2 * R2 + t3 * R3, F_GTT - 9 + 22 - F_GG);
        gG = sat_v(v, 27); clip = sat_f(v, 27);
    end
endmodule

// §7.2–7.3 (Stages.descriptor_backward, per slot): the chain gR̃ -> gs -> gh -> gu -> pair force,
// one step per state (PF1: gR̃, gs; PF2: gh; PF3: gu; PF4: f and r18 for the virial)
module nvq1_st_pair #(
    parameter F_GTT = 0, parameter F_GT = 0, parameter F_GQ = 0, parameter F_GR = 0, parameter F_GG = 0,
    parameter F_GS = 0, parameter F_GH = 0, parameter F_GU = 0, parameter F_H = 0, parameter F_P = 0
) (
    // PF1
    input  wire signed [63:0] gra0, gra1, gra2, gra3,   // Σ_m G gT[a]
    input  wire signed [63:0] gsacc,                    // Σ_m gG G'
    output reg  signed [63:0] gR0, gR1, gR2, gR3, gs,
    output reg  [2:0]         nclip_gR,
    output reg                clip_gs,
    // PF2 (registered gR̃)
    input  wire signed [63:0] rgR1, rgR2, rgR3, r0, r1, r2,
    output reg  signed [63:0] gh,
    output reg                clip_gh,
    // PF3 (registered gs, gh)
    input  wire signed [63:0] rgs, rgh, qs, qh,
    output reg  signed [63:0] gu,
    output reg                clip_gu,
    // PF4 (registered gu)
    input  wire signed [63:0] rgu, h,
    output reg  signed [63:0] f0, f1, f2,
    output reg  [1:0]         nclip_f,
    output reg  signed [63:0] r18_0, r18_1, r18_2
);
`include "nvq1_fn.vh"
    reg signed [63:0] a0, a1, a2, a3, v, p0, p1, p2;
    localparam KGR = F_GTT + F_GT - 9 - F_GR;
    always @(*) begin
        a0 = rnd(gra0, KGR); a1 = rnd(gra1, KGR); a2 = rnd(gra2, KGR); a3 = rnd(gra3, KGR);
        gR0 = sat_v(a0, 27); gR1 = sat_v(a1, 27); gR2 = sat_v(a2, 27); gR3 = sat_v(a3, 27);
        nclip_gR = sat_f(a0, 27) + sat_f(a1, 27) + sat_f(a2, 27) + sat_f(a3, 27);
        v = rnd(gsacc, F_GG + F_GT - F_GQ - 5 - F_GS) + rnd(sat_v(a0, 27), F_GR - F_GS);
        gs = sat_v(v, 27); clip_gs = sat_f(v, 27);
    end
    reg signed [63:0] vh, vu;
    always @(*) begin
        vh = rnd(rgR1 * r0 + rgR2 * r1 + rgR3 * r2, F_GR + 20 - F_GH);
        gh = sat_v(vh, 27); clip_gh = sat_f(vh, 27);
        vu = rnd(rgs * qs, F_GS + 22 - 3 - F_GU) + rnd(rgh * qh, F_GH + F_H - 3 - F_GU);
        gu = sat_v(vu, 27); clip_gu = sat_f(vu, 27);
    end
    always @(*) begin
        p0 = rnd(2 * rgu * r0, F_GU + 20 - F_P) + rnd(rgR1 * h, F_GR + F_H - F_P);
        p1 = rnd(2 * rgu * r1, F_GU + 20 - F_P) + rnd(rgR2 * h, F_GR + F_H - F_P);
        p2 = rnd(2 * rgu * r2, F_GU + 20 - F_P) + rnd(rgR3 * h, F_GR + F_H - F_P);
        nclip_f = sat_f(p0, 27) + sat_f(p1, 27) + sat_f(p2, 27);
        f0 = sat_v(p0, 27); f1 = sat_v(p1, 27); f2 = sat_v(p2, 27);
        r18_0 = rnd(r0, 6); r18_1 = rnd(r1, 6); r18_2 = rnd(r2, 6);
    end
endmodule

// §7.3 (Stages.forces_virial): the atom's virial term rnd(V_i[d1][d0], p + 14 - 24) (9 at once)
// and a force component sat(rnd(F_acc, p - 19), 32) (counter force)
module nvq1_st_assembly #(parameter F_P = 0) (
    input  wire [64 * 9 - 1:0] vi,
    output reg  [64 * 9 - 1:0] dvir,   // dvir[3 d0 + d1] = rnd(vi[3 d1 + d0], ...)
    input  wire signed [63:0]  facc,
    output reg  signed [31:0]  frc,
    output reg                 clip
);
`include "nvq1_fn.vh"
    integer d0, d1;
    reg signed [63:0] v;
    always @(*) begin
        for (d0 = 0; d0 < 3; d0 = d0 + 1)
            for (d1 = 0; d1 < 3; d1 = d1 + 1)
                dvir[64 * (3 * d0 + d1) +: 64] = rnd($signed(vi[64 * (3 * d1 + d0) +: 64]), F_P + 14 - 24);
        v = rnd(facc, F_P - 19);
        frc = sat_v(v, 32); clip = sat_f(v, 32);
    end
endmodule
