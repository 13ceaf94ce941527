// nvq_crc32c_byte: one byte of CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the
// check of fpga/PROTOCOL.md. Combinational; the caller holds the register (init 32'hFFFFFFFF)
// and transmits its complement, exactly as host/protocol.py's crc32c does.
`default_nettype none
module nvq_crc32c_byte (
    input  wire [31:0] crc,    // running register (not complemented)
    input  wire [7:0]  data,
    output wire [31:0] next
);
    function [31:0] step8;
        input [31:0] c_in;
        input [7:0]  d;
        integer k;
        reg [31:0] c;
        begin
            c = c_in ^ {24'd0, d};
            for (k = 0; k < 8; k = k + 1)
                c = c[0] ? ((c >> 1) ^ 32'h82F63B78) : (c >> 1);
            step8 = c;
        end
    endfunction

    assign next = step8(crc, data);
endmodule
`default_nettype wire
