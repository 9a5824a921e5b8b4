// Command berth-aesgcm is berth with one more storage driver, aesgcm,
// which keeps blobs on the local disk encrypted with AES-GCM. It shows how
// a custom build adds a driver without changing berth: register it, then
// run berth's own command tree.
//
//	BERTH_STORAGE_DRIVER=aesgcm BERTH_STORAGE_AESGCM_KEY=$(head -c32 /dev/urandom | base64) \
//	  berth-aesgcm serve --data ./berth-data
package main

import (
	"context"

	"github.com/berthhq/berth/cmd/berthcmd"
	"github.com/berthhq/berth/storage"
	"github.com/berthhq/berth/storage/driver"

	"example.com/berth-custom-driver/aesgcm"
)

func main() {
	storage.Register("aesgcm", storage.Factory[aesgcm.Config]{
		Check: func(c *aesgcm.Config, _ storage.Env) error { return c.Validate() },
		Open: func(_ context.Context, c *aesgcm.Config, env storage.Env) (driver.Driver, error) {
			dir := c.Dir
			if dir == "" {
				dir = env.Root // storage.root, DATA/storage by default
			}
			return aesgcm.New(dir, c.Key)
		},
	})
	berthcmd.Execute()
}
