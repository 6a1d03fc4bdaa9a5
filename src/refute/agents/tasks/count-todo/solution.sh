grep -c 'TODO' notes.txt > answer.txt
