// nvq1 rounding and saturation (fpga/SPEC.md §2.2) as Verilog functions, included inside the
// modules that use them. rnd: round half up by an arithmetic right shift (left shift for k < 0);
// sat_v/sat_f: the clipped value and whether it clipped (the caller adds the flag to the site's
// counter). All operands are 64-bit signed: every nvq1 intermediate is below 2^56 (§2.3).
function signed [63:0] rnd;
    input signed [63:0] x;
    input integer k;
    begin
        if (k > 0) rnd = (x + (64'sd1 <<< (k - 1))) >>> k;
        else rnd = x <<< (-k);
    end
endfunction

function signed [63:0] sat_v;
    input signed [63:0] x;
    input integer bits;
    reg signed [63:0] hi, lo;
    begin
        hi = (64'sd1 <<< (bits - 1)) - 64'sd1;
        lo = -(64'sd1 <<< (bits - 1));
        sat_v = (x > hi) ? hi : ((x < lo) ? lo : x);
    end
endfunction

function sat_f;
    input signed [63:0] x;
    input integer bits;
    reg signed [63:0] hi, lo;
    begin
        hi = (64'sd1 <<< (bits - 1)) - 64'sd1;
        lo = -(64'sd1 <<< (bits - 1));
        sat_f = (x > hi) || (x < lo);
    end
endfunction
