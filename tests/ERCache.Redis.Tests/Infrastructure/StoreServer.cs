using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace ERCache.Redis.Tests.Infrastructure;

/// <summary>Which RESP server a test runs against.</summary>
public enum ServerKind
{
    Redis,
    Garnet,
}

/// <summary>
/// A real <c>redis-server</c> or Garnet started on a free loopback port without persistence, and stopped by its
/// process id. <c>bash .ci/install-servers</c> installs both (redis-server from Debian; Garnet as a .NET tool in
/// <c>~/.ercache-tools</c>, or wherever <c>ERCACHE_GARNET_SERVER</c> points); <see cref="ServerInstaller"/> runs it
/// when either is missing.
/// </summary>
internal sealed class StoreServer : IDisposable
{
    private readonly string _extraArguments;
    private Process? _process;

    private StoreServer(ServerKind kind, int port, string extraArguments)
    {
        Kind = kind;
        Port = port;
        _extraArguments = extraArguments;
    }

    public ServerKind Kind { get; }

    public int Port { get; }

    /// <summary>StackExchange.Redis's own timeout in <see cref="ConnectionString"/>: a lookup that waited for the client
    /// rather than for <c>Regional:Timeout</c> takes at least this long.</summary>
    public static readonly TimeSpan ClientTimeout = TimeSpan.FromSeconds(2);

    public string ConnectionString => $"127.0.0.1:{Port},connectTimeout=1000,syncTimeout={ClientTimeout.TotalMilliseconds},asyncTimeout={ClientTimeout.TotalMilliseconds}";

    public int ProcessId => _process?.Id ?? throw new InvalidOperationException("The server is not running.");

    /// <summary>Starts a server of <paramref name="kind"/> on a free port (or on <paramref name="port"/>).</summary>
    /// <param name="kind">Redis or Garnet.</param>
    /// <param name="port">The port; a free one when null.</param>
    /// <param name="extraArguments">More server arguments (a cluster node's, for example).</param>
    public static StoreServer Start(ServerKind kind, int? port = null, string extraArguments = "")
    {
        var server = new StoreServer(kind, port ?? FreePort(), extraArguments);
        server.Restart();
        return server;
    }

    /// <summary>A free loopback port with nothing listening on it.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>(Re)starts the server process on its port and waits until it answers PING.</summary>
    public void Restart()
    {
        Kill();
        var start = Kind == ServerKind.Redis
            ? new ProcessStartInfo(RedisServerPath(), $"--port {Port} --bind 127.0.0.1 --save \"\" --appendonly no --protected-mode no {_extraArguments}")
            : new ProcessStartInfo(GarnetServerPath(), $"--port {Port} --bind 127.0.0.1 --lua --lua-transaction-mode"); // scripts, each atomic: the store writes newer-wins
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;
        _process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {start.FileName}.");
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        for (int attempt = 0; attempt < 200; attempt++) // a process starting: bounded, about 10 s at most
        {
            if (Ping())
            {
                return;
            }

            if (_process.HasExited)
            {
                throw new InvalidOperationException($"{Kind} exited at start with code {_process.ExitCode}.");
            }

            Thread.Sleep(50);
        }

        throw new TimeoutException($"{Kind} on port {Port} did not answer PING.");
    }

    /// <summary>Kills the server process (SIGKILL), as a crash would.</summary>
    public void Kill()
    {
        if (_process is { HasExited: false } process)
        {
            Signal("CONT"); // a paused process must be able to die
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
        }

        _process?.Dispose();
        _process = null;
    }

    /// <summary>Freezes the server (SIGSTOP): connections stay open, nothing is answered.</summary>
    public void Pause() => Signal("STOP");

    /// <summary>Thaws a paused server (SIGCONT).</summary>
    public void Resume() => Signal("CONT");

    public void Dispose() => Kill();

    private bool Ping()
    {
        try
        {
            using var client = new TcpClient();
            client.Connect(IPAddress.Loopback, Port);
            var stream = client.GetStream();
            stream.Write("PING\r\n"u8);
            stream.ReadTimeout = 1000;
            var buffer = new byte[16];
            int read = stream.Read(buffer);
            return Encoding.ASCII.GetString(buffer, 0, read).StartsWith("+PONG", StringComparison.Ordinal);
        }
        catch (SocketException)
        {
            return false;
        }
        catch (IOException)
        {
            return false;
        }
    }

    private void Signal(string signal)
    {
        if (_process is { HasExited: false } process)
        {
            using var kill = Process.Start("kill", $"-{signal} {process.Id}");
            kill.WaitForExit();
        }
    }

    private static string RedisServerPath()
    {
        if (Environment.GetEnvironmentVariable("ERCACHE_REDIS_SERVER") is { Length: > 0 } configured)
        {
            return configured;
        }

        const string installed = "/usr/bin/redis-server";
        ServerInstaller.EnsureInstalled(() => File.Exists(installed));
        return File.Exists(installed)
            ? installed
            : throw new InvalidOperationException("redis-server is not installed: run `bash .ci/install-servers` (or set ERCACHE_REDIS_SERVER).");
    }

    private static string GarnetServerPath()
    {
        if (Environment.GetEnvironmentVariable("ERCACHE_GARNET_SERVER") is { Length: > 0 } configured)
        {
            return configured;
        }

        string tool = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".ercache-tools", "garnet-server");
        ServerInstaller.EnsureInstalled(() => File.Exists(tool));
        return File.Exists(tool)
            ? tool
            : throw new InvalidOperationException($"Garnet is not installed at {tool}: run `bash .ci/install-servers` (or set ERCACHE_GARNET_SERVER).");
    }
}
