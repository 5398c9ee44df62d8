package sign

import "runtime"

// SignFiles signs many modules in place, as SignFile does, on up to workers
// goroutines (0 means one per CPU), and hands each result to report in the
// order of paths, so output stays deterministic. Bulk re-signing (after a key
// change, thousands of modules) is bound by the private-key operation, which
// this spreads over the CPUs, with the key loaded once.
func (s *Signer) SignFiles(paths []string, workers int, report func(path string, res *Result, err error)) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	type outcome struct {
		res *Result
		err error
	}
	done := make([]chan outcome, len(paths))
	for i := range done {
		done[i] = make(chan outcome, 1)
	}
	next := make(chan int)
	go func() {
		for i := range paths {
			next <- i
		}
		close(next)
	}()
	for w := 0; w < min(workers, len(paths)); w++ {
		go func() {
			for i := range next {
				res, err := s.SignFile(paths[i])
				done[i] <- outcome{res, err}
			}
		}()
	}
	for i, p := range paths {
		o := <-done[i]
		report(p, o.res, o.err)
	}
}
