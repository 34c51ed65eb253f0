# One Dockerfile, targets mini and base (full and xtra will extend base), two flavors:
#   docker build --target base .                      Alpine (default, small)
#   docker build --target base --build-arg DIST=debian .
# Needs BuildKit (docker buildx), which builds only the stages the target uses.
ARG DIST=alpine
ARG ALPINE_VERSION=3.23

FROM alpine:${ALPINE_VERSION} AS dist-alpine
FROM debian:sid AS dist-debian

# --- mini: Asterisk, the seed configuration and /srv persistence; no Python ------------------------
FROM dist-${DIST} AS mini
ARG DIST
ENV DIST=${DIST}
COPY image/dist.sh /usr/local/lib/pbx/dist.sh
RUN /usr/local/lib/pbx/dist.sh install mini
COPY config/asterisk/ /usr/share/pbx/seed/asterisk/
COPY config/privatedial/ /usr/share/pbx/seed/asterisk/
COPY image/persist.list /usr/share/pbx/persist.list
COPY image/bin/pbx-mini-init /usr/local/bin/pbx-mini-init
EXPOSE 5060/udp 5060/tcp 5061/tcp 10000-10099/udp
STOPSIGNAL SIGTERM
ENTRYPOINT ["pbx-mini-init"]

# --- base: + the pbx package as PID 1, runit supervision, healthcheck, nftables, TLS tools ---------
FROM mini AS base
RUN /usr/local/lib/pbx/dist.sh install base
COPY src/pbx /usr/local/lib/pbx/python/pbx
COPY image/bin/pbx /usr/local/bin/pbx
COPY image/sv/ /etc/sv/
COPY config/websms/ /usr/share/pbx/seed/asterisk/
COPY config/autoban/ /usr/share/pbx/seed/asterisk/
RUN python3 -m compileall -q /usr/local/lib/pbx/python \
 && mkdir -p /etc/service /etc/docker/entry.d /etc/docker/exit.d \
 && ln -sf pbx /usr/local/bin/websms && ln -sf pbx /usr/local/bin/websmsd \
 && ln -sf pbx /usr/local/bin/autoban \
 && ln -sf pbx /usr/local/bin/minivm-send \
 && pbx --version
# websmsd's port (unset or non-numeric disables WebSMS); above 1023 so it runs as user asterisk.
ENV WEBSMSD_PORT=8080
EXPOSE 8080/tcp
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["pbx", "health"]
ENTRYPOINT ["pbx", "init"]
