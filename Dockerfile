# chat: one binary in a slim image.
#
#   docker build -t chat .
#   docker run -p 8000:8000 -v chat-data:/data chat
#   docker run -p 8000:8000 -v chat-data:/data -e NGROK_AUTHTOKEN=… chat
#
# Users, the token secret and the history live in the /data volume:
#   docker run --rm -it -v chat-data:/data chat user add alice --users /data/users.json

ARG DENO_VERSION=2.9.6

# Build: compile main.ts, the web app and docs into one executable.
FROM denoland/deno:${DENO_VERSION} AS build
WORKDIR /src
COPY deno.json deno.lock ./
RUN deno install --frozen
COPY . .
# The binary may read and write the whole /data volume besides its defaults.
RUN deno task compile --output /out/chat --data-dir /data \
 && mkdir -p /out/data

# Run: glibc and libgcc only, as the unprivileged "nonroot" user (uid 65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/chat /usr/local/bin/chat
COPY --from=build --chown=nonroot:nonroot /out/data /data
WORKDIR /data
VOLUME ["/data"]
# NGROK_AUTHTOKEN, NGROK_DOMAIN, CHAT_SECRET, REDIS_URL…: pass them with -e.
ENV HOST=0.0.0.0 \
    PORT=8000 \
    USERS_FILE=/data/users.json \
    DATA=/data/chat.db
EXPOSE 8000
USER nonroot
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/chat", "health"]
ENTRYPOINT ["/usr/local/bin/chat"]
CMD ["serve"]
