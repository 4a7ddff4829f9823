# A deterministic Perl workload: hashes, arrays, regexes, sprintf, sort.
use strict;
use warnings;

my %h;
$h{"k$_"} = $_ x 3 for 1 .. 5000;
my @keys = sort keys %h;
print scalar(@keys), " $keys[0] $keys[-1]\n";
my $joined = join(",", map { $h{$_} } @keys[0 .. 99]);
print length($joined), "\n";
my @nums = map { ($_ * 7919) % 10007 } 1 .. 20000;
my @sorted = sort { $a <=> $b } @nums;
print "$sorted[0] $sorted[10000] $sorted[-1]\n";
my $text = join(" ", map { sprintf("w%04d", $_) } 1 .. 3000);
my @m = ($text =~ /w(\d*7)\b/g);
print scalar(@m), "\n";
(my $t2 = $text) =~ s/w(\d)/W$1$1/g;
print length($t2), "\n";
my @aoa = map { [ $_, $_ * 2, "x" x ($_ % 50) ] } 1 .. 2000;
my $sum = 0;
$sum += $_->[1] + length($_->[2]) for @aoa;
print "$sum\n";
