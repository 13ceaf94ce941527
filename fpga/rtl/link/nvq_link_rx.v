// nvq_link_rx: the receiving half of fpga/PROTOCOL.md's framing, on an 8-bit stream.
//
// Bytes from the link (a UART, or an XDMA AXI-stream after a width converter) go into a ring
// that holds one whole frame. A scanner validates the frame in place (sync "NVQB", version 1,
// type 1..11, length <= MAX_PAYLOAD, header CRC-32C, frame CRC-32C) and only then hands it on:
// first a descriptor (type, flags, seq, length), then the payload bytes with tlast. A check
// that fails discards one byte and rescans from the next one, exactly the resync rule of
// PROTOCOL.md and of host/protocol.py's Decoder, so a truncated frame followed by a good one
// still yields the good one. Nothing downstream ever sees a byte of a frame whose CRC failed.
// Counters match Decoder's: frames_ok, bad_frames (header or frame checks failed after a
// sync word) and dropped_bytes (bytes not part of an accepted frame).
// Throughput: one byte per clock while validating and while delivering (two passes over the
// payload), so the link sustains f_clk/2 bytes/s; 125 MB/s at 250 MHz is ~40x a 3 Mbaud UART.
`default_nettype none
module nvq_link_rx #(
    parameter RING_AW     = 12,                     // ring of 2^RING_AW bytes
    parameter MAX_PAYLOAD = (1 << RING_AW) - 24     // largest accepted payload (frame fits the ring)
) (
    input  wire        clk,
    input  wire        rst,
    // link bytes in
    input  wire [7:0]  s_tdata,
    input  wire        s_tvalid,
    output wire        s_tready,
    // accepted frame: descriptor, then `m_len` payload bytes
    output wire        m_hdr_valid,
    input  wire        m_hdr_ready,
    output reg  [7:0]  m_type,
    output reg  [15:0] m_flags,
    output reg  [31:0] m_seq,
    output reg  [31:0] m_len,
    output wire [7:0]  m_tdata,
    output wire        m_tvalid,
    input  wire        m_tready,
    output wire        m_tlast,
    // Decoder's counters
    output reg  [31:0] frames_ok,
    output reg  [31:0] bad_frames,
    output reg  [31:0] dropped_bytes
);
    localparam PW = RING_AW + 1;                    // pointers carry a wrap bit
    localparam [PW-1:0] RING_BYTES = 1 << RING_AW;
    localparam [PW-1:0] HDR_BYTES = 20, OVERHEAD = 24;
    localparam S_HDR = 2'd0, S_PAY = 2'd1, S_DESC = 2'd2, S_OUT = 2'd3;

    // ---- ring: written by the link, read by the scanner (one BRAM, one read port) ----
    reg [7:0]    ring [0:(1 << RING_AW) - 1];
    reg [PW-1:0] wr_ptr, start, rd_ptr;             // start: first byte of the candidate frame
    wire [PW-1:0] used = wr_ptr - start;
    assign s_tready = !rst && used != RING_BYTES;
    always @(posedge clk)
        if (s_tvalid && s_tready) ring[wr_ptr[RING_AW-1:0]] <= s_tdata;
    always @(posedge clk)
        if (rst) wr_ptr <= 0;
        else if (s_tvalid && s_tready) wr_ptr <= wr_ptr + 1'b1;

    // read stage: q holds the byte at q's address once q_valid; prefetches one byte per clock
    reg  [7:0]    q;
    reg           q_valid;
    wire          consume;
    reg           flush;                            // combinational: restart reading at new_rd
    reg  [PW-1:0] new_rd;
    wire          rd_en = !flush && rd_ptr != wr_ptr && (!q_valid || consume);
    always @(posedge clk) if (rd_en) q <= ring[rd_ptr[RING_AW-1:0]];
    always @(posedge clk)
        if (rst) begin
            rd_ptr <= 0; q_valid <= 1'b0;
        end else if (flush) begin
            rd_ptr <= new_rd; q_valid <= 1'b0;
        end else if (rd_en) begin
            rd_ptr <= rd_ptr + 1'b1; q_valid <= 1'b1;
        end else if (consume) begin
            q_valid <= 1'b0;
        end

    // ---- scanner ----
    reg [1:0]  state;
    reg [4:0]  idx;                                 // header byte index 0..19
    reg [31:0] cnt;                                 // payload(+CRC) byte index
    reg [31:0] crc, hcrc_calc;
    /* verilator lint_off UNUSEDSIGNAL */
    reg [31:0] field;                               // little-endian word being shifted in (low byte: dropped)
    /* verilator lint_on UNUSEDSIGNAL */
    reg [7:0]  ver;
    wire [31:0] crc_next;
    nvq_crc32c_byte u_crc (.crc(crc), .data(q), .next(crc_next));

    wire [31:0] word = {q, field[31:8]};            // the 4-byte field completed by this byte
    reg  [7:0]  sync_byte;
    always @(*)
        case (idx[1:0])
            2'd0: sync_byte = 8'h4E;                // 'N'
            2'd1: sync_byte = 8'h56;                // 'V'
            2'd2: sync_byte = 8'h51;                // 'Q'
            default: sync_byte = 8'h42;             // 'B'
        endcase

    assign consume     = q_valid && (state == S_HDR || state == S_PAY || (state == S_OUT && m_tready));
    assign m_hdr_valid = state == S_DESC;
    assign m_tvalid    = state == S_OUT && q_valid;
    assign m_tdata     = q;
    assign m_tlast     = cnt == m_len - 1;

    wire sync_bad  = state == S_HDR && idx < 5'd4 && q != sync_byte;
    wire hdr_last  = state == S_HDR && idx == 5'd19;
    wire hdr_good  = word == hcrc_calc && ver == 8'd1 && m_type >= 8'd1 && m_type <= 8'd11
                     && m_len <= MAX_PAYLOAD;
    wire pay_last  = state == S_PAY && cnt == m_len + 32'd3;
    wire frame_good = word == ~crc;                 // CRC of bytes 0..19+len, complemented
    wire out_last  = state == S_OUT && m_tlast;

    always @(*) begin
        flush = 1'b0;
        new_rd = start + 1'b1;
        if (consume && ((sync_bad && idx != 5'd0) || (hdr_last && !hdr_good) || (pay_last && !frame_good)))
            flush = 1'b1;                           // rescan from the next byte
        else if (consume && pay_last)
            begin flush = 1'b1; new_rd = start + HDR_BYTES; end       // deliver the payload
        else if (state == S_DESC && m_hdr_ready && m_len == 0)
            begin flush = 1'b1; new_rd = start + OVERHEAD; end
        else if (consume && out_last)
            begin flush = 1'b1; new_rd = start + OVERHEAD + m_len[PW-1:0]; end
    end

    always @(posedge clk) begin
        if (rst) begin
            state <= S_HDR; idx <= 0; cnt <= 0; crc <= 32'hFFFFFFFF; start <= 0;
            frames_ok <= 0; bad_frames <= 0; dropped_bytes <= 0;
        end else begin
            case (state)
            S_HDR: if (consume) begin
                if (sync_bad) begin
                    dropped_bytes <= dropped_bytes + 1'b1;
                    start <= start + 1'b1;
                    idx <= 0; crc <= 32'hFFFFFFFF;
                end else begin
                    crc <= crc_next;
                    field <= word;
                    idx <= idx + 1'b1;
                    if (idx == 5'd4)  ver <= q;
                    if (idx == 5'd5)  m_type <= q;
                    if (idx == 5'd7)  m_flags <= word[31:16];
                    if (idx == 5'd11) m_seq <= word;
                    if (idx == 5'd15) begin m_len <= word; hcrc_calc <= ~crc_next; end
                    if (hdr_last) begin
                        idx <= 0;
                        if (hdr_good) begin
                            state <= S_PAY; cnt <= 0;
                        end else begin
                            bad_frames <= bad_frames + 1'b1;
                            dropped_bytes <= dropped_bytes + 1'b1;
                            start <= start + 1'b1; crc <= 32'hFFFFFFFF;
                        end
                    end
                end
            end
            S_PAY: if (consume) begin
                cnt <= cnt + 1'b1;
                if (cnt < m_len) crc <= crc_next;
                else field <= word;
                if (pay_last) begin
                    crc <= 32'hFFFFFFFF;
                    if (frame_good) begin
                        state <= S_DESC;
                    end else begin
                        state <= S_HDR;
                        bad_frames <= bad_frames + 1'b1;
                        dropped_bytes <= dropped_bytes + 1'b1;
                        start <= start + 1'b1;
                    end
                end
            end
            S_DESC: if (m_hdr_ready) begin
                cnt <= 0;
                if (m_len == 0) begin
                    state <= S_HDR; start <= start + OVERHEAD; frames_ok <= frames_ok + 1'b1;
                end else
                    state <= S_OUT;
            end
            default: if (consume) begin                     // S_OUT
                cnt <= cnt + 1'b1;
                if (out_last) begin
                    state <= S_HDR; start <= start + OVERHEAD + m_len[PW-1:0];
                    frames_ok <= frames_ok + 1'b1;
                end
            end
            endcase
        end
    end
endmodule
`default_nettype wire
