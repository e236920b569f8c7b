/* One of ten translation units, so a make -j build has something to spread. */
int part7(int x) { return x * 7 + 7; }
