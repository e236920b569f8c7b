/* One of ten translation units, so a make -j build has something to spread. */
int part8(int x) { return x * 8 + 8; }
