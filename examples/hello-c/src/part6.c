/* One of ten translation units, so a make -j build has something to spread. */
int part6(int x) { return x * 6 + 6; }
