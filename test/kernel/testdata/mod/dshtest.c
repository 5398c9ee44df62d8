// SPDX-License-Identifier: GPL-2.0
/* The out-of-tree module the kernel test signs and loads. */
#include <linux/init.h>
#include <linux/module.h>

static int __init dshtest_init(void)
{
	pr_info("dshtest: loaded\n");
	return 0;
}

static void __exit dshtest_exit(void)
{
}

module_init(dshtest_init);
module_exit(dshtest_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("dkms-sign-hook kernel test module");
