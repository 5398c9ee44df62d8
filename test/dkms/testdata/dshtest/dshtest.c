// SPDX-License-Identifier: GPL-2.0
#include <linux/module.h>

static int __init dshtest_init(void) { return 0; }
static void __exit dshtest_exit(void) { }
module_init(dshtest_init);
module_exit(dshtest_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("dkms-sign-hook end-to-end test module");
