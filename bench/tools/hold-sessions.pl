#!/usr/bin/perl
# hold-sessions.pl — open N interactive SSH sessions at once from one process,
# hold them idle, then close them; everything bounded in time.
#
#   hold-sessions.pl DIR N UP_TIMEOUT HOLD_MAX CLOSE_WAIT STALL -- ssh -tt ... target
#
# Each session is the given command (an ssh client with a pty request), with
# its stdin and stdout on pipes held by this process, stderr in DIR/err.I.
# At start it types `echo RE""ADY` into every session; a session is *up* when
# READY comes back (the typed line's own echo never contains READY). When all
# are up, or have ended, or UP_TIMEOUT seconds passed, or STALL seconds went
# by without a session coming up or ending, it writes DIR/up and
# holds the sessions idle until DIR/release exists (or HOLD_MAX seconds since
# the start), then types `exit` into each one, closes their stdin, and waits
# at most CLOSE_WAIT seconds (or STALL seconds without an exit) for the
# clients to exit; stragglers get SIGTERM,
# then SIGKILL. Files written in DIR:
#   times      t0 t_launched t_up t_release t_closed (epoch seconds)
#   ready.tsv  I START READY             (one line per session that came up)
#   exit.tsv   I STATUS EXIT_TIME        (STATUS: exit code, or 128+signal)
#   up         "READY ENDED" when the holding phase starts
# One process drives every session (poll(2), no fd-set size limit), so the
# client side costs one ssh process per session and nothing else.
use strict;
use warnings;
use IO::Poll qw(POLLIN POLLHUP POLLERR);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);

my ($dir, $n, $up_timeout, $hold_max, $close_wait, $stall, $sep, @cmd) = @ARGV;
die "usage: $0 DIR N UP_TIMEOUT HOLD_MAX CLOSE_WAIT STALL -- CMD...\n"
  unless defined $sep && $sep eq '--' && @cmd && $n =~ /^\d+$/;
$SIG{PIPE} = 'IGNORE';

my (%in, %out, %start, %ready, %status, %pid_of, %idx_of_pid, %buf);
my $poll = IO::Poll->new;
my $t0 = time;

for my $i (1 .. $n) {
    pipe(my $in_r, my $in_w) or die "pipe: $!";
    pipe(my $out_r, my $out_w) or die "pipe: $!";
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open(STDIN, '<&', $in_r) or POSIX::_exit(127);
        open(STDOUT, '>&', $out_w) or POSIX::_exit(127);
        open(STDERR, '>', "$dir/err.$i") or POSIX::_exit(127);
        close $_ for ($in_w, $out_r);
        exec { $cmd[0] } @cmd or POSIX::_exit(127);
    }
    close $in_r;
    close $out_w;
    $in_w->autoflush(1);
    syswrite($in_w, "echo RE\"\"ADY\n");
    $start{$i} = time;
    $in{$i} = $in_w;
    $out{$i} = $out_r;
    $pid_of{$i} = $pid;
    $idx_of_pid{$pid} = $i;
    $buf{$i} = '';
    $poll->mask($out_r => POLLIN);
}
my $t_launched = time;
my %fh_idx = map { (fileno($out{$_}) => $_) } keys %out;
my $progress = time; # last time a session came up or ended

sub reap {
    while ((my $pid = waitpid(-1, WNOHANG)) > 0) {
        my $i = $idx_of_pid{$pid} // next;
        my $st = $? & 127 ? 128 + ($? & 127) : $? >> 8;
        $status{$i} = [$st, time];
        $progress = time;
    }
}

# one round of reading; returns when something happened or after $wait s
sub pump {
    my ($wait) = @_;
    my $nfd = $poll->poll($wait);
    if ($nfd > 0) {
        for my $fh ($poll->handles(POLLIN | POLLHUP | POLLERR)) {
            my $i = $fh_idx{fileno($fh)};
            my $r = sysread($fh, my $data, 65536);
            if (!$r) { $poll->remove($fh); close $fh; next; }
            next if $ready{$i};
            $buf{$i} .= $data;
            if (index($buf{$i}, 'READY') >= 0) { $ready{$i} = $progress = time; $buf{$i} = ''; }
            else { $buf{$i} = substr($buf{$i}, -8) if length $buf{$i} > 64; }
        }
    }
    reap();
}

# phase 1: until every session is up or has ended
while (time - $t0 < $up_timeout) {
    my $settled = grep { $ready{$_} || $status{$_} } 1 .. $n;
    last if $settled >= $n;
    last if time - $progress > $stall;
    pump(0.05);
}
my $t_up = time;
{
    my $nr = scalar keys %ready;
    my $ne = scalar grep { !$ready{$_} && $status{$_} } 1 .. $n;
    open(my $f, '>', "$dir/up.tmp") or die; print $f "$nr $ne\n"; close $f;
    rename("$dir/up.tmp", "$dir/up");
}

# phase 2: hold, idle, until released (drain any output meanwhile)
while (!-e "$dir/release" && time - $t0 < $hold_max) { pump(0.1); }
my $t_release = time;
for my $i (1 .. $n) {
    next unless $in{$i};
    syswrite($in{$i}, "exit\n");
    close $in{$i};
    delete $in{$i};
}

# phase 3: wait for the clients to exit, bounded
while (time - $t_release < $close_wait) {
    last if scalar(keys %status) >= $n;
    last if time - $progress > $stall && time - $t_release > $stall;
    pump(0.05);
}
my $t_closed = time;
my @left = grep { !$status{$_} } 1 .. $n;
kill 'TERM', map { $pid_of{$_} } @left if @left;
for (1 .. 50) { reap(); last if scalar(keys %status) >= $n; sleep 0.1; }
@left = grep { !$status{$_} } 1 .. $n;
kill 'KILL', map { $pid_of{$_} } @left if @left;
for (1 .. 50) { reap(); last if scalar(keys %status) >= $n; sleep 0.1; }

open(my $rf, '>', "$dir/ready.tsv") or die;
printf $rf "%d\t%.6f\t%.6f\n", $_, $start{$_}, $ready{$_} for sort { $a <=> $b } keys %ready;
close $rf;
open(my $ef, '>', "$dir/exit.tsv") or die;
for my $i (1 .. $n) {
    my ($st, $t) = $status{$i} ? @{ $status{$i} } : ('lost', 0);
    # exit status after the forced close: marked so the caller can tell
    my $forced = ($status{$i} && $t > $t_closed) ? "\tforced" : "";
    printf $ef "%d\t%s\t%.6f%s\n", $i, $st, $t, $forced;
}
close $ef;
open(my $tf, '>', "$dir/times") or die;
printf $tf "%.6f %.6f %.6f %.6f %.6f\n", $t0, $t_launched, $t_up, $t_release, $t_closed;
close $tf;
exit 0;
