package sign

import (
	"runtime"
	"sync"

	"github.com/dkms-sign-hook/dkms-sign-hook/internal/atomicfile"
)

// batchSize is how many modules share one durability pass: their new
// versions are written, then made durable together, then renamed into
// place, then each directory is synced once (atomicfile.CommitAll). Each
// module keeps two descriptors open (its lock and its new version) until
// its batch is committed, and two batches may be open at once.
const batchSize = 128

// SignFiles signs many modules in place, as SignFile does, on up to workers
// goroutines (0 means one per CPU), and hands each result to report in the
// order of paths, so output stays deterministic. Bulk re-signing (after a key
// change, thousands of modules) is bound by the private-key operation, which
// this spreads over the CPUs, with the key loaded once; the fsyncs that make
// each module durable are paid once per batch. Every module is, at any
// moment, either untouched or completely signed. A result is reported once
// its module is durably in place.
func (s *Signer) SignFiles(paths []string, workers int, report func(path string, res *Result, err error)) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	batches := make(chan []batchItem, 1)
	var committed sync.WaitGroup
	committed.Add(1)
	go func() {
		defer committed.Done()
		for b := range batches {
			commitBatch(b)
			for _, it := range b {
				report(it.path, it.res, it.err)
			}
		}
	}()
	for start := 0; start < len(paths); start += batchSize {
		b := make([]batchItem, min(batchSize, len(paths)-start))
		for i := range b {
			b[i].path = paths[start+i]
		}
		s.prepareAll(b, workers)
		batches <- b
	}
	close(batches)
	committed.Wait()
}

type batchItem struct {
	path string
	pr   *prepared
	res  *Result
	err  error
}

// prepareAll writes the new version of every module of b, on workers goroutines.
func (s *Signer) prepareAll(b []batchItem, workers int) {
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(workers, len(b)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				b[i].pr, b[i].err = s.prepare(b[i].path, b[i].path)
				if b[i].err == nil {
					b[i].res = b[i].pr.res
				}
			}
		}()
	}
	for i := range b {
		next <- i
	}
	close(next)
	wg.Wait()
}

// commitBatch puts every prepared module of b in place, durably, and
// releases the modules.
func commitBatch(b []batchItem) {
	var pending []*atomicfile.Pending
	var owners []int
	for i, it := range b {
		if it.pr != nil && it.pr.p != nil {
			pending = append(pending, it.pr.p)
			owners = append(owners, i)
		}
	}
	for k, err := range atomicfile.CommitAll(pending) {
		if err != nil {
			i := owners[k]
			b[i].res, b[i].err = nil, writeFailed(b[i].path, err)
		}
	}
	for _, it := range b {
		if it.pr != nil {
			it.pr.m.Close()
		}
	}
}
