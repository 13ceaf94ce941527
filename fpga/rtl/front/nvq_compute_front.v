// nvq_compute_front: fpga/PROTOCOL.md's CELL and COMPUTE messages in RTL, between the link
// framer (nvq_link_rx / nvq_link_tx) and nvq1_core's frame write and result read ports
// (fpga/rtl/core/INTERFACE.md).
//
// In: accepted frames from nvq_link_rx (descriptor, then the payload bytes; CRCs already
// checked). CELL (i32[9] CELL codes, u8 pbc) is written to the core's cell rows and answered
// ACK(0). COMPUTE (u32 N, u16 K, u8 flags; i32[3N] coords; u8[N] types; if K > 0 i32[N*K]
// list and i8[3*N*K] shifts) is checked in the order of host/server.py's BoardCore (image
// loaded, limits, payload size = 7 + 13N + 7NK, cell sent, list held for K = 0 with N rows)
// before a single word is written; then every value goes through the write port as its last
// byte arrives, the core runs, and the RESULT payload (fixed encoding: u8 0, u32 N, u32
// saturations, u32 overflow atoms, i64 energy, i64[N] atom energies, i32[3N] forces,
// i64[9] virial) is read back from the result port byte by byte into nvq_link_tx. A check
// that fails drains the payload and answers ERROR(code, text) with BoardCore's code.
// While streaming, the checks of nvnmd.compute.check_request (type < NTYPES, neighbour
// index < N) are made; a failure answers ERROR(E_COMPUTE) instead of starting the core.
// Every other message type passes through unchanged on the o_* port to the message layer
// (image upload, IDENTIFY/CAPS, RESET, the retry cache), which drives `loaded` and `clear`.
// One byte per clock in and out; 3 extra clocks per result word (address, read, latch).
`default_nettype none
module nvq_compute_front #(
    parameter MAX_ATOMS = 1024,   // the core's frame memory (atoms)
    parameter MAX_K     = 256,    // the core's row width (slots per atom)
    parameter NTYPES    = 4       // atom types of the loaded image
) (
    input  wire        clk,
    input  wire        rst,
    // message layer
    input  wire        loaded,     // an image is in the core's memories
    input  wire        clear,      // one-cycle pulse: forget cell and list (RESET, new image)
    output reg         cell_valid,
    output reg         list_valid,
    output reg  [31:0] list_rows,
    // accepted frames (nvq_link_rx)
    input  wire        s_hdr_valid,
    output wire        s_hdr_ready,
    input  wire [7:0]  s_type,
    input  wire [15:0] s_flags,
    input  wire [31:0] s_seq,
    input  wire [31:0] s_len,
    input  wire [7:0]  s_tdata,
    input  wire        s_tvalid,
    output wire        s_tready,
    input  wire        s_tlast,
    // every other frame, unchanged, to the message layer
    output wire        o_hdr_valid,
    input  wire        o_hdr_ready,
    output wire [7:0]  o_type,
    output wire [15:0] o_flags,
    output wire [31:0] o_seq,
    output wire [31:0] o_len,
    output wire [7:0]  o_tdata,
    output wire        o_tvalid,
    input  wire        o_tready,
    output wire        o_tlast,
    // nvq1_core
    output reg         wr_en,
    output reg  [2:0]  wr_sel,
    output reg  [31:0] wr_addr,
    output reg  [63:0] wr_data,
    output reg         start,
    input  wire        busy,
    input  wire        done,
    output reg  [1:0]  rd_sel,
    output reg  [31:0] rd_addr,
    input  wire [63:0] rd_data,
    // replies (nvq_link_tx)
    output wire        m_hdr_valid,
    input  wire        m_hdr_ready,
    output wire [7:0]  m_type,
    output wire [15:0] m_flags,
    output wire [31:0] m_seq,
    output wire [31:0] m_len,
    output wire [7:0]  m_tdata,
    output wire        m_tvalid,
    input  wire        m_tready
);
    // message types and error codes of PROTOCOL.md
    localparam [7:0] T_ACK = 8'd6, T_CELL = 8'd7, T_COMPUTE = 8'd8, T_RESULT = 8'd9, T_ERROR = 8'd10;
    localparam [7:0] E_BAD_MESSAGE = 8'd1, E_NOT_LOADED = 8'd2, E_LIMIT = 8'd4, E_NO_CELL = 8'd5,
                     E_NO_LIST = 8'd6, E_COMPUTE = 8'd7;
    localparam [4:0] S_IDLE = 5'd0, S_PASS = 5'd1, S_CELL = 5'd2, S_HEAD = 5'd3, S_CHECK = 5'd4,
                     S_SCAL = 5'd5, S_SCALK = 5'd20, S_CHECK2 = 5'd21, S_BODY = 5'd6, S_DRAIN = 5'd7, S_START = 5'd8, S_WAIT = 5'd9,
                     S_RHDR = 5'd10, S_RADDR = 5'd11, S_RREAD = 5'd12, S_RLATCH = 5'd13, S_RSEND = 5'd14,
                     S_EHDR = 5'd15, S_ESEND = 5'd16, S_AHDR = 5'd17, S_ASEND = 5'd18, S_RUN = 5'd19;
    // COMPUTE payload sections
    localparam [2:0] P_COORD = 3'd0, P_TYPE = 3'd1, P_LIST = 3'd2, P_SHIFT = 3'd3, P_END = 3'd4;
    // RESULT payload items
    localparam [3:0] R_ENC = 4'd0, R_N = 4'd1, R_SAT = 4'd2, R_OVER = 4'd3, R_E = 4'd4, R_AE = 4'd5,
                     R_F = 4'd6, R_VIR = 4'd7, R_END = 4'd8;

    reg [4:0]  st;
    reg [31:0] seq, len, pos;          // pos: payload bytes consumed
    reg [31:0] natoms;
    reg [15:0] kk;
    reg [23:0] acc;                    // the first three bytes of a 32-bit word
    reg [1:0]  bidx;                   // byte of the word being assembled
    reg [2:0]  sec;                    // payload section
    reg [31:0] idx, sec_len;           // word index in the section, words in it
    reg        bad_type, bad_index;    // a type or neighbour index out of range (check_request)
    reg        list_bad;               // the held list has an index out of range
    reg [7:0]  ecode;
    reg        got_last;
    // sizes: the one product N*K (one DSP48E2; the limits are checked before it is formed),
    // every other multiple by shifts and adds
    reg [31:0] nk;
    wire [31:0] n3 = (natoms << 1) + natoms;
    wire [31:0] nk3 = (nk << 1) + nk;
    wire [63:0] need = 64'd7 + {32'd0, (natoms << 3) + (natoms << 2) + natoms} + {29'd0, nk, 3'd0} - {32'd0, nk};

    wire ours = s_type == T_CELL || s_type == T_COMPUTE;
    assign s_hdr_ready = st == S_IDLE && (ours || o_hdr_ready);
    assign o_hdr_valid = st == S_IDLE && s_hdr_valid && !ours;
    assign o_type = s_type;
    assign o_flags = s_flags;
    assign o_seq = s_seq;
    assign o_len = s_len;
    assign o_tdata = s_tdata;
    assign o_tvalid = st == S_PASS && s_tvalid;
    assign o_tlast = s_tlast;
    wire   in_take = st == S_CELL || st == S_HEAD || st == S_BODY || st == S_DRAIN;
    assign s_tready = in_take || (st == S_PASS && o_tready);
    wire   fire = s_tvalid && s_tready;

    // a 32-bit word completes with this byte
    wire [31:0] word32 = {s_tdata, acc};
    wire [63:0] sword32 = {{32{s_tdata[7]}}, word32};

    // ---- RESULT / ERROR / ACK byte source
    reg [3:0]  item;
    reg [31:0] ridx;
    reg [63:0] rword;
    reg [3:0]  rbyte, rsize;
    reg [15:0] epos;
    assign m_flags = 16'd0;
    assign m_hdr_valid = st == S_RHDR || st == S_EHDR || st == S_AHDR;
    assign m_type = st == S_RHDR ? T_RESULT : st == S_EHDR ? T_ERROR : T_ACK;
    assign m_seq = seq;

    // ERROR texts (ASCII, shown by the host as BoardError's text)
    function [7:0] etext_len(input [7:0] code);
        case (code)
        E_NOT_LOADED:  etext_len = 15;
        E_LIMIT:       etext_len = 21;
        E_NO_CELL:     etext_len = 7;
        E_NO_LIST:     etext_len = 26;
        E_COMPUTE:     etext_len = 26;
        default:       etext_len = 26;   // E_BAD_MESSAGE
        endcase
    endfunction
    localparam [8*15-1:0] X_NOT_LOADED = "no image loaded";
    localparam [8*21-1:0] X_LIMIT      = "held list: other rows";
    localparam [8*7-1:0]  X_NO_CELL    = "no cell";
    localparam [8*26-1:0] X_NO_LIST    = "no neighbour list to reuse";
    localparam [8*26-1:0] X_COMPUTE    = "type or index out of range";
    localparam [8*26-1:0] X_BAD        = "COMPUTE: bad size or limit";
    function [7:0] etext(input [7:0] code, input [7:0] i);
        case (code)
        E_NOT_LOADED:  etext = X_NOT_LOADED[8 * (14 - i) +: 8];
        E_LIMIT:       etext = X_LIMIT[8 * (20 - i) +: 8];
        E_NO_CELL:     etext = X_NO_CELL[8 * (6 - i) +: 8];
        E_NO_LIST:     etext = X_NO_LIST[8 * (25 - i) +: 8];
        E_COMPUTE:     etext = X_COMPUTE[8 * (25 - i) +: 8];
        default:       etext = X_BAD[8 * (25 - i) +: 8];
        endcase
    endfunction
    wire [7:0]  elen = etext_len(ecode);
    assign m_len = st == S_RHDR ? 32'd93 + (natoms << 4) + (natoms << 2) : st == S_EHDR ? 32'd4 + {24'd0, elen} : 32'd8;
    // ERROR payload: u16 code, u16 n, text
    wire [7:0]  ebyte = epos == 0 ? ecode : epos == 1 ? 8'd0 : epos == 2 ? elen : epos == 3 ? 8'd0
                      : etext(ecode, epos[7:0] - 8'd4);

    assign m_tdata = st == S_ESEND ? ebyte : st == S_ASEND ? 8'd0 : rword[8 * rbyte[2:0] +: 8];
    assign m_tvalid = st == S_RSEND || st == S_ESEND || st == S_ASEND;
    wire   out_fire = m_tvalid && m_tready;

    // next RESULT item after (item, ridx): its read address, size and count
    reg [3:0]  nitem;
    reg [31:0] nidx;
    always @(*) begin
        nitem = item;
        nidx = ridx + 1;
        case (item)
        R_AE:  if (ridx + 1 == natoms) begin nitem = R_F; nidx = 0; end
        R_F:   if (ridx + 1 == n3) begin nitem = R_VIR; nidx = 0; end
        R_VIR: if (ridx + 1 == 9) begin nitem = R_END; nidx = 0; end
        default: begin nitem = item + 1'b1; nidx = 0; end
        endcase
        if (nitem == R_AE && natoms == 0) nitem = R_F;
        if (nitem == R_F && natoms == 0) nitem = R_VIR;
    end
    function [3:0] item_size(input [3:0] it);
        case (it)
        R_ENC: item_size = 1;
        R_N, R_SAT, R_OVER, R_F: item_size = 4;
        default: item_size = 8;
        endcase
    endfunction


    always @(posedge clk) begin
        wr_en <= 1'b0;
        start <= 1'b0;
        if (rst) begin
            st <= S_IDLE; cell_valid <= 1'b0; list_valid <= 1'b0; list_bad <= 1'b0; list_rows <= 0;
            rd_sel <= 0; rd_addr <= 0; seq <= 0; natoms <= 0; ecode <= 0;
        end else begin
            if (clear) begin cell_valid <= 1'b0; list_valid <= 1'b0; list_bad <= 1'b0; end
            case (st)
            S_IDLE: if (s_hdr_valid && s_hdr_ready) begin
                seq <= s_seq; len <= s_len; pos <= 0; bidx <= 0; got_last <= 1'b0;
                bad_type <= 1'b0; bad_index <= 1'b0; idx <= 0;
                if (!ours) st <= s_len == 0 ? S_IDLE : S_PASS;
                else if (s_type == T_CELL) begin
                    // CELL is i32[9] + u8 pbc exactly; anything else is refused before a row is written
                    if (s_len != 37) begin ecode <= E_BAD_MESSAGE; st <= s_len == 0 ? S_EHDR : S_DRAIN; end
                    else st <= S_CELL;
                end else if (s_len == 0) begin
                    ecode <= loaded ? E_BAD_MESSAGE : E_NOT_LOADED; st <= S_EHDR;
                end else st <= S_HEAD;
            end
            S_PASS: if (fire && s_tlast) st <= S_IDLE;
            S_CELL: if (fire) begin
                pos <= pos + 1; bidx <= bidx + 1'b1;
                if (bidx != 2'd3) acc[8 * bidx +: 8] <= s_tdata;
                if (pos < 36 && bidx == 2'd3) begin
                    wr_en <= 1'b1; wr_sel <= 3'd3; wr_addr <= pos >> 2; wr_data <= sword32;
                end
                if (s_tlast) begin cell_valid <= 1'b1; st <= S_AHDR; end
            end
            S_HEAD: if (fire) begin
                pos <= pos + 1;
                case (pos[2:0])
                3'd0: natoms[7:0] <= s_tdata;
                3'd1: natoms[15:8] <= s_tdata;
                3'd2: natoms[23:16] <= s_tdata;
                3'd3: natoms[31:24] <= s_tdata;
                3'd4: kk[7:0] <= s_tdata;
                3'd5: kk[15:8] <= s_tdata;
                default: ;
                endcase
                got_last <= s_tlast;
                if (pos == 6) st <= S_CHECK;
                else if (s_tlast) begin   // a truncated head
                    ecode <= loaded ? E_BAD_MESSAGE : E_NOT_LOADED; st <= S_EHDR;
                end
            end
            S_CHECK: begin   // the head is in: BoardCore's checks, in its order, before any write
                nk <= natoms[16:0] * kk[8:0];
                if (!loaded) begin ecode <= E_NOT_LOADED; st <= S_SCAL; end
                else if (natoms > MAX_ATOMS || kk > MAX_K) begin ecode <= E_BAD_MESSAGE; st <= S_SCAL; end
                else st <= S_CHECK2;
            end
            S_CHECK2: begin
                if ({32'd0, len} != need) ecode <= E_BAD_MESSAGE;
                else if (!cell_valid) ecode <= E_NO_CELL;
                else if (kk == 0 && !list_valid) ecode <= E_NO_LIST;
                else if (kk == 0 && list_rows != natoms) ecode <= E_LIMIT;
                else ecode <= 0;
                st <= S_SCAL;
            end
            S_SCAL:
                if (ecode != 0) st <= got_last ? S_EHDR : S_DRAIN;
                else begin
                    wr_en <= 1'b1; wr_sel <= 3'd0; wr_addr <= 0; wr_data <= {32'd0, natoms};
                    idx <= 0; sec <= P_COORD; sec_len <= n3;
                    st <= kk != 0 ? S_SCALK : natoms == 0 ? S_RUN : S_BODY;
                end
            S_SCALK: begin
                wr_en <= 1'b1; wr_sel <= 3'd0; wr_addr <= 1; wr_data <= {48'd0, kk};
                st <= natoms == 0 ? S_RUN : S_BODY;
            end
            S_BODY: if (fire) begin
                pos <= pos + 1;
                if (sec == P_COORD || sec == P_LIST) begin
                    bidx <= bidx + 1'b1;
                    if (bidx != 2'd3) acc[8 * bidx +: 8] <= s_tdata;
                    else begin
                        wr_en <= 1'b1; wr_sel <= sec == P_COORD ? 3'd1 : 3'd4; wr_addr <= idx; wr_data <= sword32;
                        if (sec == P_LIST && $signed(word32) >= $signed(natoms)) bad_index <= 1'b1;
                        idx <= idx + 1;
                    end
                end else begin
                    wr_en <= 1'b1; wr_sel <= sec == P_TYPE ? 3'd2 : 3'd5; wr_addr <= idx;
                    wr_data <= sec == P_TYPE ? {56'd0, s_tdata} : {{56{s_tdata[7]}}, s_tdata};
                    if (sec == P_TYPE && s_tdata >= NTYPES) bad_type <= 1'b1;
                    idx <= idx + 1;
                end
                if ((sec == P_TYPE || sec == P_SHIFT || bidx == 2'd3) && idx + 1 == sec_len) begin
                    idx <= 0;
                    case (sec)
                    P_COORD: begin sec <= P_TYPE; sec_len <= natoms; end
                    P_TYPE:  begin sec <= kk == 0 ? P_END : P_LIST; sec_len <= nk; end
                    P_LIST:  begin sec <= P_SHIFT; sec_len <= nk3; end
                    default: sec <= P_END;
                    endcase
                end
                if (s_tlast) st <= S_RUN;
            end
            S_RUN: begin   // every word is written (the last one this clock)
                if (kk != 0) begin list_valid <= 1'b1; list_rows <= natoms; list_bad <= bad_index; end
                if (bad_type || bad_index || (kk == 0 && list_bad)) begin ecode <= E_COMPUTE; st <= S_EHDR; end
                else st <= S_START;
            end
            S_DRAIN: if (fire && s_tlast) st <= S_EHDR;
            S_START: if (!busy) begin start <= 1'b1; st <= S_WAIT; end
            S_WAIT: if (!start && done) st <= S_RHDR;
            S_RHDR: if (m_hdr_ready) begin item <= R_ENC; ridx <= 0; st <= S_RADDR; end
            S_RADDR: begin
                case (item)
                R_SAT:  begin rd_sel <= 2'd0; rd_addr <= 3; end
                R_OVER: begin rd_sel <= 2'd0; rd_addr <= 1; end
                R_E:    begin rd_sel <= 2'd0; rd_addr <= 0; end
                R_AE:   begin rd_sel <= 2'd1; rd_addr <= ridx; end
                R_F:    begin rd_sel <= 2'd2; rd_addr <= ridx; end
                default: begin rd_sel <= 2'd0; rd_addr <= 32 + ridx; end   // R_VIR
                endcase
                rsize <= item_size(item); rbyte <= 0;
                if (item == R_ENC) begin rword <= 0; st <= S_RSEND; end
                else if (item == R_N) begin rword <= {32'd0, natoms}; st <= S_RSEND; end
                else st <= S_RREAD;
            end
            S_RREAD: st <= S_RLATCH;        // the core samples the address this clock
            S_RLATCH: begin                  // rd_data holds the word
                // saturations: u32 on the wire, clamped as host/protocol.py's encode_result does
                rword <= item == R_SAT && rd_data[63:32] != 0 ? 64'hFFFFFFFF : rd_data;
                st <= S_RSEND;
            end
            S_RSEND: if (out_fire) begin
                rbyte <= rbyte + 1'b1;
                if (rbyte + 1'b1 == rsize) begin
                    item <= nitem; ridx <= nidx;
                    st <= nitem == R_END ? S_IDLE : S_RADDR;
                end
            end
            S_EHDR: begin epos <= 0; if (m_hdr_ready) st <= S_ESEND; end
            S_ESEND: if (out_fire) begin
                epos <= epos + 1'b1;
                if (epos + 1'b1 == 16'd4 + {8'd0, elen}) st <= S_IDLE;
            end
            S_AHDR: begin epos <= 0; if (m_hdr_ready) st <= S_ASEND; end
            S_ASEND: if (out_fire) begin
                epos <= epos + 1'b1;
                if (epos == 16'd7) st <= S_IDLE;
            end
            default: st <= S_IDLE;
            endcase
        end
    end
endmodule
`default_nettype wire
