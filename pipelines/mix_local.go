package pipelines

// The in-process executor of mix: a worker pool over files (select) and over
// groups (pack), with pieces held in memory or spilled to the temp area.

import (
	"context"
	"path/filepath"
	"sync"

	"longctx/progress"
	"longctx/shards"
)

// runLocal is the in-process executor: select over files with a worker
// pool, then pack each group. Pieces wait for packing in memory when the
// budget fits MemoryTokens, else in one spill file per group under the temp
// area tmp (next to the output), so memory stays about workers x GroupTokens.
func runLocal(ctx context.Context, opt MixOptions, job mixJob, files []cacheFile, tmp string) (selectCounts, []groupResult, error) {
	counts := newSelectCounts()
	var store pieceStore = &memStore{buckets: make([][]shards.Piece, job.Groups)}
	if job.Plan.Total > opt.MemoryTokens {
		sp, err := newSpillStore(filepath.Join(tmp, "spill"), job.Groups)
		if err != nil {
			return counts, nil, err
		}
		store = sp
	}
	var bar *progress.Bar
	if !opt.Quiet {
		bar = progress.New("mix "+job.Plan.Name, 2*job.Plan.Total, progress.Options{Unit: "tokens"})
		defer bar.Done()
	}
	// Workers hand pieces to the store in batches of about flushTokens.
	const flushTokens = 4 << 20
	fileCounts := make([]selectCounts, len(files))
	err := parallel(ctx, opt.Workers, len(files), func(i int) error {
		local := map[int][]shards.Piece{}
		var held int
		flush := func() error {
			for g, ps := range local {
				if err := store.add(g, ps); err != nil {
					return err
				}
			}
			clear(local)
			held = 0
			return nil
		}
		c, err := selectFile(ctx, job, files[i], func(g int, p shards.Piece) error {
			local[g] = append(local[g], p)
			held += len(p.Tokens)
			if bar != nil {
				bar.Add(int64(len(p.Tokens)))
			}
			if held >= flushTokens {
				return flush()
			}
			return nil
		})
		if err != nil {
			return err
		}
		fileCounts[i] = c
		return flush()
	})
	if err != nil {
		return counts, nil, err
	}
	for _, c := range fileCounts {
		counts.merge(c)
	}
	results := make([]*groupResult, job.Groups)
	err = parallel(ctx, opt.Workers, job.Groups, func(g int) error {
		pieces, err := store.take(g)
		if err != nil || len(pieces) == 0 {
			return err
		}
		r, err := packGroup(ctx, job, g, pieces)
		if err != nil {
			return err
		}
		results[g] = &r
		if bar != nil {
			bar.Add(r.Pack.Real)
		}
		return nil
	})
	if err != nil {
		return counts, nil, err
	}
	var out []groupResult
	for _, r := range results {
		if r != nil {
			out = append(out, *r)
		}
	}
	return counts, out, nil
}

// parallel runs fn(0..n-1) on up to workers goroutines and returns the first
// error (by index, so the error reported does not depend on scheduling).
func parallel(ctx context.Context, workers, n int, fn func(i int) error) error {
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, max(n, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				errs[i] = fn(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	return firstError(errs)
}

func firstError(errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
