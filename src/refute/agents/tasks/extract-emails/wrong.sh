# takes every word with an @ in it, punctuation and all
grep -oE '[^ ]+@[^ ]+' server.log | sort -u > answer.txt
