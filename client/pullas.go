package client

import "context"

// PullAs is Pull with the name the image gets in the layout's index.json (annotation
// org.opencontainers.image.ref.name) chosen by the caller: a tag ("v1") as skopeo's and
// oras's layouts have it, where Pull uses the whole reference.
func (c *Client) PullAs(ctx context.Context, ref Reference, l *Layout, name string, opts CopyOptions) (Descriptor, error) {
	d, err := c.copy(ctx, &regSource{c: c, ref: ref}, &layoutTarget{l: l, name: name}, opts)
	return d, wrap("pull", ref.String(), err)
}
