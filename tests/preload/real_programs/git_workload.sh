# git init/add/commit/log/diff in a fresh repository in the current
# directory. Author, committer and dates are fixed so the object ids, and so
# the whole output, are the same on every run.
set -eu
export GIT_AUTHOR_NAME=Test GIT_AUTHOR_EMAIL=test@example.com
export GIT_COMMITTER_NAME=Test GIT_COMMITTER_EMAIL=test@example.com
export GIT_AUTHOR_DATE='2024-01-01T00:00:00Z' GIT_COMMITTER_DATE='2024-01-01T00:00:00Z'
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
git init -q -b main .
for i in $(seq 1 40); do printf 'line %s\n' $(seq 1 $i) > "file$i.txt"; done
git add .
git commit -q -m "first commit"
git rm -q file40.txt
sed -i 's/line 3$/line three/' file*.txt
git commit -q -am "second commit"
git log --format='%H %s'
git diff --stat HEAD~1 | tail -n 1
git show --format=%T HEAD --quiet
git cat-file -p HEAD:file5.txt | wc -l
