/* One of ten translation units, so a make -j build has something to spread. */
int part9(int x) { return x * 9 + 9; }
