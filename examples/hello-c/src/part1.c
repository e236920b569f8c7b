/* One of ten translation units, so a make -j build has something to spread. */
int part1(int x) { return x * 1 + 1; }
