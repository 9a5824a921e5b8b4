package bench

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// The CNCF registry keeps repositories and tags as directory trees of
// small link files (its registry/storage/paths.go documents the layout),
// and lists them by walking those trees. Populating 100,000 repositories
// through its HTTP API would take most of the time budget, so the fixtures
// are made the way below: one repository or tag is created through the API,
// and its tree is copied under other names. Link files hold only digests,
// never names, so each copy is byte for byte what the API would have
// written for that name. The copies are checked through the API (tag list
// and catalog counts) before anything is measured.

// treeEntry is one directory or file of a template tree.
type treeEntry struct {
	rel     string
	dir     bool
	content []byte
}

// readTree reads the tree below dir, parents before children.
func readTree(dir string) ([]treeEntry, error) {
	var out []treeEntry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if d.IsDir() {
			out = append(out, treeEntry{rel: rel, dir: true})
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("template %s: %s is not a regular file", dir, rel)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out = append(out, treeEntry{rel: rel, content: b})
		return nil
	})
	return out, err
}

// writeTree creates dst (which must not exist; its parent must) with the
// template's entries.
func writeTree(dst string, tmpl []treeEntry) error {
	if err := os.Mkdir(dst, 0o755); err != nil {
		return err
	}
	for _, e := range tmpl {
		p := filepath.Join(dst, e.rel)
		if e.dir {
			if err := os.Mkdir(p, 0o755); err != nil {
				return err
			}
			continue
		}
		if err := os.WriteFile(p, e.content, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// cloneTree copies the tree at src to each of dsts, several at a time.
func cloneTree(src string, dsts []string, workers int) error {
	tmpl, err := readTree(src)
	if err != nil {
		return err
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	next := make(chan string)
	for range max(1, workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for dst := range next {
				if err := writeTree(dst, tmpl); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, d := range dsts {
		next <- d
	}
	close(next)
	wg.Wait()
	return firstErr
}

// distributionRepoDir is where the CNCF registry keeps repository name
// below its storage root.
func distributionRepoDir(storageRoot, name string) string {
	return filepath.Join(storageRoot, "docker", "registry", "v2", "repositories", filepath.FromSlash(name))
}

// removeAll removes dir like os.RemoveAll, but removes the entries of a
// large directory (a registry's 100,000 repositories) several at a time,
// reading the directory once: os.RemoveAll re-reads a directory from its
// start after every 1,024 entries, which on a large one takes minutes.
func removeAll(dir string, workers int) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return os.RemoveAll(dir)
	}
	if len(entries) < 1024 {
		for _, e := range entries {
			p := filepath.Join(dir, e.Name())
			if e.IsDir() {
				err = removeAll(p, workers)
			} else {
				err = os.Remove(p)
			}
			if err != nil {
				return err
			}
		}
		return os.Remove(dir)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	next := make(chan string)
	for range max(1, workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range next {
				if err := os.RemoveAll(p); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, e := range entries {
		next <- filepath.Join(dir, e.Name())
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return os.Remove(dir)
}
