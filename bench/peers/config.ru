# The hello-world Rack app for Unicorn and Puma: 200, text/plain, 12 bytes.
HELLO = ["Hello world\n".freeze].freeze
run lambda { |_env| [200, { "content-type" => "text/plain", "content-length" => "12" }, HELLO] }
