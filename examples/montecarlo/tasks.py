"""Print the 1,000 task lines of the Monte Carlo example (task i: PRNG seed i) for `--args-file`."""

for i in range(1000):
    print(i)
