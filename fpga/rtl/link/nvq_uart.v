// nvq_uart_rx / nvq_uart_tx: 8N1 UART <-> the 8-bit stream of nvq_link_rx / nvq_link_tx, for
// a board whose host link is a serial port (the ZCU104's USB-UART; 3 Mbaud at 300 MHz is
// CLKS_PER_BIT = 100). The receiver samples mid-bit after a two-flop synchroniser and drops a
// byte whose stop bit is low (the framer's CRC and resync handle what a UART cannot).
`default_nettype none
module nvq_uart_rx #(parameter CLKS_PER_BIT = 100) (
    input  wire       clk,
    input  wire       rst,
    input  wire       rxd,
    output reg  [7:0] m_tdata,
    output reg        m_tvalid,     // one-cycle pulse per byte (the framer's ring always accepts
    output reg        frame_error   //  while it has room; a UART cannot be throttled anyway)
);
    localparam CW = $clog2(CLKS_PER_BIT * 3 / 2 + 1);
    reg [1:0] sync;
    reg [CW-1:0] cnt;
    reg [3:0] bitn;
    reg [7:0] sh;
    reg busy;
    wire rx = sync[1];
    always @(posedge clk) begin
        sync <= {sync[0], rxd};
        m_tvalid <= 1'b0;
        if (rst) begin
            busy <= 1'b0; frame_error <= 1'b0; sync <= 2'b11;
        end else if (!busy) begin
            if (!rx) begin busy <= 1'b1; cnt <= CLKS_PER_BIT * 3 / 2 - 1; bitn <= 0; end  // mid first data bit
        end else if (cnt != 0) begin
            cnt <= cnt - 1'b1;
        end else if (bitn < 4'd8) begin
            sh <= {rx, sh[7:1]}; bitn <= bitn + 1'b1; cnt <= CLKS_PER_BIT - 1;
        end else begin                                  // stop bit
            busy <= 1'b0;
            if (rx) begin m_tdata <= sh; m_tvalid <= 1'b1; end
            else frame_error <= 1'b1;
        end
    end
endmodule

module nvq_uart_tx #(parameter CLKS_PER_BIT = 100) (
    input  wire       clk,
    input  wire       rst,
    input  wire [7:0] s_tdata,
    input  wire       s_tvalid,
    output wire       s_tready,
    output reg        txd
);
    localparam CW = $clog2(CLKS_PER_BIT + 1);
    reg [CW-1:0] cnt;
    reg [3:0] bitn;
    reg [9:0] sh;
    reg busy;
    assign s_tready = !busy && !rst;
    always @(posedge clk) begin
        if (rst) begin
            busy <= 1'b0; txd <= 1'b1;
        end else if (!busy) begin
            txd <= 1'b1;
            if (s_tvalid) begin busy <= 1'b1; sh <= {1'b1, s_tdata, 1'b0}; bitn <= 0; cnt <= 0; end
        end else if (cnt != 0) begin
            cnt <= cnt - 1'b1;
        end else if (bitn == 4'd10) begin
            busy <= 1'b0; txd <= 1'b1;
        end else begin
            txd <= sh[0]; sh <= {1'b1, sh[9:1]}; bitn <= bitn + 1'b1; cnt <= CLKS_PER_BIT - 1;
        end
    end
endmodule

// The receiving side of a UART board: serial line -> validated frames.
module nvq_uart_link_rx #(parameter CLKS_PER_BIT = 100, parameter RING_AW = 12) (
    input  wire        clk,
    input  wire        rst,
    input  wire        rxd,
    output wire        m_hdr_valid,
    input  wire        m_hdr_ready,
    output wire [7:0]  m_type,
    output wire [15:0] m_flags,
    output wire [31:0] m_seq,
    output wire [31:0] m_len,
    output wire [7:0]  m_tdata,
    output wire        m_tvalid,
    input  wire        m_tready,
    output wire        m_tlast,
    output wire [31:0] frames_ok,
    output wire [31:0] bad_frames,
    output wire [31:0] dropped_bytes,
    output wire        uart_frame_error
);
    wire [7:0] b;
    wire bv;
    /* verilator lint_off PINCONNECTEMPTY */
    nvq_uart_rx #(.CLKS_PER_BIT(CLKS_PER_BIT)) u_rx (.clk(clk), .rst(rst), .rxd(rxd), .m_tdata(b), .m_tvalid(bv),
                                                    .frame_error(uart_frame_error));
    nvq_link_rx #(.RING_AW(RING_AW)) u_link (.clk(clk), .rst(rst), .s_tdata(b), .s_tvalid(bv), .s_tready(),
        .m_hdr_valid(m_hdr_valid), .m_hdr_ready(m_hdr_ready), .m_type(m_type), .m_flags(m_flags), .m_seq(m_seq),
        .m_len(m_len), .m_tdata(m_tdata), .m_tvalid(m_tvalid), .m_tready(m_tready), .m_tlast(m_tlast),
        .frames_ok(frames_ok), .bad_frames(bad_frames), .dropped_bytes(dropped_bytes));
    /* verilator lint_on PINCONNECTEMPTY */
endmodule
`default_nettype wire
