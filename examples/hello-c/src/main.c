#include <stdio.h>

int part1(int), part2(int), part3(int), part4(int), part5(int);
int part6(int), part7(int), part8(int), part9(int), part10(int);

int main(void) {
  int sum = part1(1) + part2(2) + part3(3) + part4(4) + part5(5) + part6(6) + part7(7) + part8(8) + part9(9) + part10(10);
  printf("hello from buildcoord: %d\n", sum);
  return 0;
}
