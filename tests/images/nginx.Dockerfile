# The test bed's stand-in for the nginx image users pull (nginx:1.28-alpine): Debian 12's nginx, which
# runs the configuration inference_stack writes for a service's reverse proxy unchanged. No registry is
# reachable on the test machines, so it is built from the local Debian base.
ARG BASE_IMAGE=gpufleet/debian:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light \
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/default \
 && nginx -v
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
