package atomicfile

import (
	"path/filepath"
	"sync"
)

// syncParallel is how many fsyncs CommitAll keeps in flight: enough for the
// file system to fold them into few journal commits.
const syncParallel = 16

// CommitAll commits many pending files, paying for durability once per
// batch instead of once per file: every temporary file is fsynced (in
// parallel), then each is renamed into place, then each directory is
// fsynced once. errs[i] is the outcome for files[i]; a file whose fsync
// fails is aborted and its original left untouched, the others go on. Every
// file is either as it was or completely replaced, at any moment.
func CommitAll(files []*Pending) (errs []error) {
	errs = make([]error, len(files))
	parallel(len(files), func(i int) { errs[i] = files[i].sync() })
	dirs := map[string][]int{}
	for i, p := range files {
		if errs[i] != nil {
			p.Abort()
			continue
		}
		if errs[i] = p.rename(); errs[i] == nil {
			dir := filepath.Dir(p.path)
			dirs[dir] = append(dirs[dir], i)
		}
	}
	var groups [][]int
	for _, idx := range dirs {
		groups = append(groups, idx)
	}
	parallel(len(groups), func(g int) {
		if err := syncDir(files[groups[g][0]].path); err != nil {
			for _, i := range groups[g] {
				errs[i] = err
			}
		}
	})
	return errs
}

// parallel runs fn(0..n-1), syncParallel at a time.
func parallel(n int, fn func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, syncParallel)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		}()
	}
	wg.Wait()
}
