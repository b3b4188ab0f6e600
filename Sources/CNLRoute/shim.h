/* libnl-route-3: the reader of kernel state (links, addresses, routes, neighbours and
 * bridge/VXLAN FDB entries as cache dumps). minik writes with libmnl; it reads here. */
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <netlink/cache.h>
#include <netlink/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/vxlan.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/addr.h>
#include <netlink/route/route.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/neighbour.h>
