def greeting():
    return "hello from a module on a .pth path line"
