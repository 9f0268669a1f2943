# Build stage base for the test bed's Vulkan image of llama.cpp: Debian 12 with the Vulkan headers of
# Debian 13 in /usr/local/include (searched before /usr/include by the compiler and by CMake's FindVulkan).
# bookworm's headers (1.3.239) are too old for this llama.cpp ('LayerSettingEXT' is not a member of 'vk');
# only the headers are taken from trixie, nothing is installed from it.
ARG BASE_IMAGE=gpufleet/debian:bookworm
FROM ${BASE_IMAGE}
ARG APT_MIRROR
RUN echo "deb ${APT_MIRROR} trixie main" >/etc/apt/sources.list.d/trixie-headers.list \
 && apt-get update \
 && cd /tmp \
 && apt-get download libvulkan-dev/trixie \
 && dpkg -x libvulkan-dev_*.deb /tmp/vulkan-dev \
 && cp -a /tmp/vulkan-dev/usr/include/. /usr/local/include/ \
 && rm -rf /tmp/vulkan-dev /tmp/libvulkan-dev_*.deb /etc/apt/sources.list.d/trixie-headers.list /var/lib/apt/lists/* \
 && test -f /usr/local/include/vulkan/vulkan.hpp
