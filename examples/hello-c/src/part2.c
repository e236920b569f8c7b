/* One of ten translation units, so a make -j build has something to spread. */
int part2(int x) { return x * 2 + 2; }
