# A deterministic bash workload: arrays, associative arrays, string
# operations, arithmetic, functions, command substitution and pipes.
set -eu
declare -A seen
list=()
for ((i = 0; i < 1500; i++)); do
  key="k$((i * 7 % 997))"
  seen[$key]=$(( ${seen[$key]:-0} + i ))
  list+=("item-$i")
done
echo "keys ${#seen[@]} items ${#list[@]}"
total=0
for k in "${!seen[@]}"; do total=$(( total + ${seen[$k]} )); done
echo "total $total"
s=""
for ((i = 0; i < 500; i++)); do s+="${list[i]//-/_},"; done
echo "len ${#s} ${s:0:30}"
upper() { local x=$1; echo "${x^^}"; }
echo "$(upper hello) $(printf '%s\n' "${list[@]:0:200}" | sort -r | head -n 1)"
words=$(printf '%s ' "${list[@]:100:50}")
echo "words $(echo "$words" | wc -w)"
