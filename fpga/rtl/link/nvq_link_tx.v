// nvq_link_tx: the sending half of fpga/PROTOCOL.md's framing, on an 8-bit stream.
//
// A descriptor (type, flags, seq, length) followed by `length` payload bytes becomes
// sync | version | type | flags | seq | length | header CRC | payload | frame CRC, with both
// CRC-32C computed on the fly (no buffering: the length is known before the payload starts).
// The payload passes straight through (s_tready = m_tready), one byte per clock.
`default_nettype none
module nvq_link_tx (
    input  wire        clk,
    input  wire        rst,
    input  wire        s_hdr_valid,
    output wire        s_hdr_ready,
    input  wire [7:0]  s_type,
    input  wire [15:0] s_flags,
    input  wire [31:0] s_seq,
    input  wire [31:0] s_len,
    input  wire [7:0]  s_tdata,
    input  wire        s_tvalid,
    output wire        s_tready,
    output reg  [7:0]  m_tdata,
    output wire        m_tvalid,
    input  wire        m_tready
);
    localparam T_IDLE = 3'd0, T_HDR = 3'd1, T_HCRC = 3'd2, T_PAY = 3'd3, T_FCRC = 3'd4;
    reg [2:0]  state;
    reg [3:0]  idx;
    reg [31:0] cnt, crc, hcrc;
    reg [7:0]  typ;
    reg [15:0] flags;
    reg [31:0] seq, len;
    wire [31:0] crc_next;
    nvq_crc32c_byte u_crc (.crc(crc), .data(m_tdata), .next(crc_next));

    assign s_hdr_ready = state == T_IDLE;
    assign s_tready    = state == T_PAY && m_tready;
    assign m_tvalid    = state == T_HDR || state == T_HCRC || state == T_FCRC || (state == T_PAY && s_tvalid);
    wire   fire        = m_tvalid && m_tready;
    wire [31:0] fcrc   = ~crc;

    always @(*) begin
        case (state)
        T_HDR:
            case (idx)
                4'd0: m_tdata = 8'h4E;  4'd1: m_tdata = 8'h56;  4'd2: m_tdata = 8'h51;  4'd3: m_tdata = 8'h42;
                4'd4: m_tdata = 8'd1;   4'd5: m_tdata = typ;
                4'd6: m_tdata = flags[7:0];  4'd7: m_tdata = flags[15:8];
                4'd8: m_tdata = seq[7:0];    4'd9: m_tdata = seq[15:8];
                4'd10: m_tdata = seq[23:16]; 4'd11: m_tdata = seq[31:24];
                4'd12: m_tdata = len[7:0];   4'd13: m_tdata = len[15:8];
                4'd14: m_tdata = len[23:16]; default: m_tdata = len[31:24];
            endcase
        T_HCRC:  m_tdata = hcrc[8 * idx[1:0] +: 8];
        T_PAY:   m_tdata = s_tdata;
        default: m_tdata = fcrc[8 * idx[1:0] +: 8];
        endcase
    end

    always @(posedge clk) begin
        if (rst) begin
            state <= T_IDLE; idx <= 0; cnt <= 0; crc <= 32'hFFFFFFFF;
        end else case (state)
        T_IDLE: if (s_hdr_valid) begin
            typ <= s_type; flags <= s_flags; seq <= s_seq; len <= s_len;
            state <= T_HDR; idx <= 0; crc <= 32'hFFFFFFFF;
        end
        T_HDR: if (fire) begin
            crc <= crc_next; idx <= idx + 1'b1;
            if (idx == 4'd15) begin state <= T_HCRC; idx <= 0; hcrc <= ~crc_next; end
        end
        T_HCRC: if (fire) begin
            crc <= crc_next; idx <= idx + 1'b1;
            if (idx == 4'd3) begin idx <= 0; cnt <= 0; state <= len == 0 ? T_FCRC : T_PAY; end
        end
        T_PAY: if (fire) begin
            crc <= crc_next; cnt <= cnt + 1'b1;
            if (cnt == len - 1) state <= T_FCRC;
        end
        default: if (fire) begin                       // T_FCRC
            idx <= idx + 1'b1;
            if (idx == 4'd3) begin state <= T_IDLE; idx <= 0; end
        end
        endcase
    end
endmodule
`default_nettype wire
