# berth's container image: the static binary (CGO_ENABLED=0), CA certificates and a
# non-root user on an empty (scratch) base.
#
#   docker build -t berth .                      # compiles in a golang stage
#   docker run -p 5000:5000 -v berth-data:/data \
#     -v $PWD/berth.yaml:/etc/berth/berth.yaml:ro -e BERTH_CONFIG=/etc/berth/berth.yaml berth
#
# The container listens on 0.0.0.0:5000 and keeps everything in the /data volume. berth
# refuses to serve an open registry on a non-loopback address, so the image needs a
# configuration with authentication (auth.mode basic or token; see the README) and stops at
# start, saying so, without one. For a throwaway open registry on a trusted machine:
#
#   docker run -p 127.0.0.1:5000:5000 berth serve --addr 0.0.0.0:5000 --data /data --insecure-open
#
# A binary built elsewhere (CI, or a machine without network access to pull golang) goes into
# the same image through the prebuilt stage: a context holding rootfs/ laid out as the build
# stage lays out /rootfs (usr/local/bin/berth, etc/ssl/certs/ca-certificates.crt, etc/passwd,
# etc/group) and an empty volume/, and, with BuildKit, --build-arg BERTH_ROOTFS=prebuilt.

ARG BERTH_ROOTFS=build
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/berthhq/berth/cmd/berthcmd.Version=${VERSION}" \
        -o /rootfs/usr/local/bin/berth ./cmd/berth \
    && mkdir -p /rootfs/etc/ssl/certs /volume \
    && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
    && echo 'berth:x:65532:65532:berth:/data:/sbin/nologin' > /rootfs/etc/passwd \
    && echo 'berth:x:65532:' > /rootfs/etc/group

FROM scratch AS prebuilt
COPY rootfs/ /rootfs/
COPY volume/ /volume/

FROM ${BERTH_ROOTFS} AS rootfs

FROM scratch
COPY --from=rootfs /rootfs/ /
COPY --from=rootfs --chown=65532:65532 /volume /data
USER 65532:65532
ENV HOME=/data
VOLUME ["/data"]
EXPOSE 5000
ENTRYPOINT ["/usr/local/bin/berth"]
CMD ["serve", "--addr", "0.0.0.0:5000", "--data", "/data"]
