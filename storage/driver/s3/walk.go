package s3

import (
	"context"
	"iter"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/berthhq/berth/storage/driver"
	"github.com/berthhq/berth/storage/driver/keywalk"
)

// Walk implements driver.Driver with one flat listing (no delimiter) below
// path, from which package keywalk presents the directories the keys imply
// in the walk's order.
func (d *Driver) Walk(ctx context.Context, p string, fn driver.WalkFunc) error {
	if !driver.ValidDirPath(p) {
		return invalid(p)
	}
	found, err := keywalk.Walk(ctx, p, d.listObjects(ctx, p), fn)
	if err != nil {
		return err
	}
	if !found && p != "/" {
		return notFound(p)
	}
	return nil
}

// listObjects lists every object below directory p, in key order. Errors
// are wrapped for the caller.
func (d *Driver) listObjects(ctx context.Context, p string) iter.Seq2[keywalk.Object, error] {
	prefix := d.dirPrefix(p)
	return func(yield func(keywalk.Object, error) bool) {
		pages := s3.NewListObjectsV2Paginator(d.client, &s3.ListObjectsV2Input{Bucket: &d.bucket, Prefix: &prefix})
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				yield(keywalk.Object{}, wrap("walk", p, err))
				return
			}
			for _, o := range page.Contents {
				l := keywalk.Object{
					Rel:     strings.TrimPrefix(aws.ToString(o.Key), prefix),
					Size:    aws.ToInt64(o.Size),
					ModTime: aws.ToTime(o.LastModified),
				}
				if !yield(l, nil) {
					return
				}
			}
		}
	}
}
