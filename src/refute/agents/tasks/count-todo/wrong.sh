# counts "todo" in any case, and every occurrence rather than every line
grep -oi 'todo' notes.txt | wc -l > answer.txt
