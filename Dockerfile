# tally as a container: a static binary on a distroless, non-root base.
#
#   docker build -t tally .
#   docker run -p 8080:8080 -v tally-data:/data tally serve -demo
#
# The binary embeds SQLite (pure Go), the dashboard and the migrations, so
# the image holds nothing else.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=""
RUN CGO_ENABLED=0 go build -trimpath \
	-ldflags "-s -w -X main.version=${VERSION}" \
	-o /out/tally ./cmd/tally

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tally /usr/local/bin/tally
# The embedded store's file lives in /data unless DATABASE_URL says otherwise.
WORKDIR /data
ENV LISTEN_ADDR=0.0.0.0:8080 \
	DATABASE_URL=/data/tally.db
EXPOSE 8080
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/tally"]
CMD ["serve"]
