# copies the inputs instead of processing them
mkdir -p output && cp input/*.txt output/
