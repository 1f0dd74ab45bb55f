// Command rope measures the Men et al. lower-bound search (rope.MenLowerBound:
// witness distances + rotation scan) against the anchor, the same grid
// search that calls rope.FirstNegative (math.Cos for every pair and distance)
// at every grid point. Both must return the same base; the speed-up is
// printed as a ratio.
//
//	go run ./benchmarks/rope [-lengths 2048,4096,8192] [-head-dim 64]
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"longctx/rope"
)

// anchor is Su Jianlin's grid search written the plain way.
func anchor(headDim, length, levels int) float64 {
	B := 1000 * float64(length)
	for rope.FirstNegative(headDim, B, length) >= 0 {
		B *= 10
	}
	scale := 1.0
	for range levels {
		scale *= 10
		for j := 1; j < int(scale); j++ {
			b := B * float64(j) / scale
			if b > 1 && rope.FirstNegative(headDim, b, length) < 0 {
				B = b
				break
			}
		}
	}
	return B
}

func main() {
	lengths := flag.String("lengths", "2048,4096,8192", "comma-separated target lengths")
	headDim := flag.Int("head-dim", 64, "rotary dimension")
	flag.Parse()
	fmt.Printf("Men et al. lower bound, head_dim %d, %d grid levels\n", *headDim, rope.MenLevels)
	fmt.Printf("%8s %14s %12s %12s %8s\n", "length", "b*", "anchor", "search", "speed-up")
	for _, s := range strings.Split(*lengths, ",") {
		l, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			fmt.Fprintf(os.Stderr, "bad length %q\n", s)
			os.Exit(2)
		}
		t0 := time.Now()
		want := anchor(*headDim, l, rope.MenLevels)
		ta := time.Since(t0)
		t0 = time.Now()
		got, err := rope.MenLowerBound(*headDim, l, rope.MenLevels)
		ts := time.Since(t0)
		if err != nil || got != want {
			fmt.Fprintf(os.Stderr, "length %d: search %v (%v) differs from anchor %v\n", l, got, err, want)
			os.Exit(1)
		}
		fmt.Printf("%8d %14.1f %12s %12s %7.1fx\n", l, got, ta.Round(time.Millisecond), ts.Round(time.Millisecond), ta.Seconds()/ts.Seconds())
	}
}
