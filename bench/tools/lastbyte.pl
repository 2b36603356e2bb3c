#!/usr/bin/perl
# lastbyte.pl — read stdin to EOF, discard it, and print one line:
#   BYTES FIRST_DATA_TS LAST_DATA_TS EOF_TS
# (wall-clock seconds since the epoch, microsecond resolution). Used by the
# close check: LAST_DATA_TS is when the client handed over the last byte of
# output; the client's exit is timed by the caller.
use strict;
use warnings;
use Time::HiRes qw(time);

binmode STDIN;
my ($bytes, $first, $last) = (0, 0, 0);
my $buf;
while (1) {
    my $r = sysread(STDIN, $buf, 1 << 20);
    die "lastbyte.pl: read error: $!\n" unless defined $r;
    last if $r == 0;
    my $t = time;
    $first ||= $t;
    $last = $t;
    $bytes += $r;
}
printf "%d %.6f %.6f %.6f\n", $bytes, $first, $last, time;
