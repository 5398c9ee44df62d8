// SPDX-License-Identifier: GPL-2.0
#include <linux/module.h>

static int __init dshdemo_init(void) { return 0; }
static void __exit dshdemo_exit(void) { }
module_init(dshdemo_init);
module_exit(dshdemo_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("dkms-sign-hook demo module: does nothing, signed by your key");
