# smtp_exporter's container image. Build it with `make image` (podman, or
# docker when podman is missing): make builds the static binary (CGO off,
# version-stamped) and stages it in dist/image with the CA bundle and
# example.yml, so this file pulls nothing: FROM scratch and COPY only.
#
#   make image IMAGE=smtp_exporter:dev
#   podman run --rm -p 9425:9425 smtp_exporter:dev
#   podman run --rm -p 9425:9425 -v ./my.yml:/etc/smtp_exporter/config.yml:ro smtp_exporter:dev
#
# The configuration is /etc/smtp_exporter/config.yml (example.yml until a
# volume replaces it); more flags follow the image name.
FROM scratch

# nobody, so that tools show a name for the numeric USER below.
COPY etc/passwd etc/group /etc/
# STARTTLS, SMTPS, IMAPS and MTA-STS verify certificates against this bundle.
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY config.yml /etc/smtp_exporter/config.yml
# The password files example.yml names (relative to the config's directory).
COPY examples/ /etc/smtp_exporter/examples/
COPY smtp_exporter /bin/smtp_exporter

ARG VERSION=unknown
ARG REVISION=unknown
ARG SOURCE=https://github.com/smtp-exporter/smtp_exporter
ARG CREATED=unknown

LABEL org.opencontainers.image.title="smtp_exporter" \
      org.opencontainers.image.description="Prometheus exporter for SMTP servers" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0"

USER 65534:65534
EXPOSE 9425
ENTRYPOINT ["/bin/smtp_exporter", "--config.file=/etc/smtp_exporter/config.yml"]
