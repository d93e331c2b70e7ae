//! strace's own lines, for the unit tests of the reading.

// Lines as strace 6.1 wrote them for `node tests/node/scenario-rr.js` (shortened where
// strace itself shortens, `...`).
pub(super) const NODE_RR: &str = r#"100 execve("/usr/bin/node", ["node", "scenario-rr.js"], 0x7ffc /* 35 vars */) = 0
100 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID, child_tid=0x7f46, parent_tid=0x7f46, exit_signal=0, stack=0x7f46, stack_size=0x7fff00, tls=0x7f46} => {parent_tid=[101]}, 88) = 101
101 recvmsg(7, {msg_namelen=0}, 0) = -1 EAGAIN (Resource temporarily unavailable)
100 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f46) = 200
200 execve("/usr/bin/node", ["/usr/bin/node", "/tmp/scenario-rr.js"], 0xf40a /* 38 vars */) = 0
100 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f46) = 300
300 execve("/usr/bin/node", ["/usr/bin/node", "/tmp/scenario-rr.js"], 0xf40a /* 38 vars */) = 0
301 listen(99, 1) = 0
300 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID, child_tid=0x7f06, parent_tid=0x7f06, exit_signal=0, stack=0x7f06, stack_size=0x7fff00, tls=0x7f06} => {parent_tid=[301]}, 88) = 301
100 socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK, IPPROTO_IP) = 21
100 setsockopt(21, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
100 bind(21, {sa_family=AF_INET, sin_port=htons(0), sin_addr=inet_addr("127.0.0.1")}, 16) = 0
100 listen(21, 511)                   = 0
100 socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK, IPPROTO_IP) = 22
100 connect(22, {sa_family=AF_INET, sin_port=htons(36407), sin_addr=inet_addr("127.0.0.1")}, 16) = -1 EINPROGRESS (Operation now in progress)
100 accept4(21, NULL, NULL, SOCK_CLOEXEC|SOCK_NONBLOCK) = 23
100 sendmsg(20, {msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base="{\"cmd\":\"NODE_HANDLE\",\"type\":\"net"..., iov_len=129}], msg_iovlen=1, msg_control=[{cmsg_len=20, cmsg_level=SOL_SOCKET, cmsg_type=SCM_RIGHTS, cmsg_data=[23]}], msg_controllen=24, msg_flags=0}, 0) = 129
300 recvmsg(3,  <unfinished ...>
100 setsockopt(22, SOL_TCP, TCP_NODELAY, [1], 4 <unfinished ...>
300 <... recvmsg resumed>{msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base="{\"cmd\":\"NODE_HANDLE\",\"type\":\"net"..., iov_len=65536}], msg_iovlen=1, msg_control=[{cmsg_len=20, cmsg_level=SOL_SOCKET, cmsg_type=SCM_RIGHTS, cmsg_data=[19]}], msg_controllen=24, msg_flags=MSG_CMSG_CLOEXEC}, MSG_CMSG_CLOEXEC) = 129
100 <... setsockopt resumed>)         = 0
100 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=300, si_uid=0, si_status=0, si_utime=13 /* 0.13 s */, si_stime=2 /* 0.02 s */} ---
"#;
