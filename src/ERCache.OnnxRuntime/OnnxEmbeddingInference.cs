using System.Buffers;
using ERCache.Inference;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace ERCache.OnnxRuntime;

/// <summary>
/// A user tower exported to ONNX, run with ONNX Runtime: one session per model, shared by every call, and one
/// <c>Run</c> per batch. The features of the batch's users are written by an <see cref="OnnxFeatureWriter"/> into one
/// pooled input tensor; the output tensor is the batch's own destination, so the embeddings land where the cache reads
/// them without a copy or a per-user allocation.
/// </summary>
/// <remarks>
/// The model is checked when this is built: the input must be a float tensor <c>[batch, features]</c> with a fixed
/// feature count, the output a float tensor <c>[batch, Dimensions]</c>; anything else is an
/// <see cref="InvalidOperationException"/> naming the model, the tensor and its shape. When the cache's hard limit
/// cancels a call, the run is terminated (<see cref="RunOptions.Terminate"/>). Disposing releases the session.
/// </remarks>
public sealed class OnnxEmbeddingInference : IEmbeddingInference, IDisposable
{
    private readonly InferenceSession _session;
    private readonly OnnxFeatureWriter _features;
    private readonly string[] _inputNames;
    private readonly string[] _outputNames;

    // Runs in progress plus one for the owner until Dispose: the session is released when the count reaches zero, so
    // a run racing with disposal finishes on a live session (a run on a released session crashes the process). The same
    // count as ERCache's internal LeaseCount, kept here because that type is not public and this is another package.
    private int _active = 1;
    private int _disposed;

    /// <summary>Loads <paramref name="options"/>' model for <paramref name="model"/> and checks its shapes.</summary>
    /// <param name="model">The cache's model name (named in errors).</param>
    /// <param name="dimensions">The model's configured <c>Dimensions</c>: the output's second axis.</param>
    /// <param name="options">The file, tensor names and session settings.</param>
    /// <param name="features">Writes each user's features.</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidOperationException">The model's input or output is not what the cache needs.</exception>
    public OnnxEmbeddingInference(string model, int dimensions, OnnxModelOptions options, OnnxFeatureWriter features)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(model);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dimensions);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(features);
        if (!File.Exists(options.Path))
        {
            throw new FileNotFoundException($"The ONNX file of model '{model}' does not exist: {options.Path}", options.Path);
        }

        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.IntraOpThreads, $"{nameof(options)}.{nameof(options.IntraOpThreads)}");
        Model = model;
        Dimensions = dimensions;
        _features = features;
        using var sessionOptions = new SessionOptions
        {
            IntraOpNumThreads = options.IntraOpThreads,
            InterOpNumThreads = 1,
            GraphOptimizationLevel = options.OptimizationLevel,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
        };
        _session = new InferenceSession(options.Path, sessionOptions);
        try
        {
            var (input, inputShape) = Pick(_session.InputMetadata, options.Input, "input");
            var (output, outputShape) = Pick(_session.OutputMetadata, options.Output, "output");
            if (inputShape.Length != 2 || inputShape[1] <= 0)
            {
                throw Shape("input", input, inputShape, "[batch, features] with a fixed feature count");
            }

            if (outputShape.Length != 2 || outputShape[1] != dimensions)
            {
                throw Shape("output", output, outputShape, $"[batch, {dimensions}] (the model's Dimensions)");
            }

            Features = checked((int)inputShape[1]);
            _inputNames = [input];
            _outputNames = [output];
        }
        catch
        {
            _session.Dispose();
            throw;
        }
    }

    /// <summary>The cache's model name.</summary>
    public string Model { get; }

    /// <summary>Values per embedding (the output's second axis).</summary>
    public int Dimensions { get; }

    /// <summary>Features per user (the input's second axis).</summary>
    public int Features { get; }

    /// <inheritdoc />
    public ValueTask InferAsync(InferenceBatch batch, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(batch);
        Run(batch.UserIds.Span, batch.Destination, cancellationToken);
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Computes the embeddings of <paramref name="userIds"/> in one run, into <paramref name="embeddings"/> (one row of
    /// <see cref="Dimensions"/> per user), synchronously on this thread. What <see cref="InferAsync"/> does for a batch;
    /// also for warming a session up or measuring it.
    /// </summary>
    /// <param name="userIds">The users.</param>
    /// <param name="embeddings">Receives <c>userIds.Length × Dimensions</c> values.</param>
    /// <param name="cancellationToken">Terminates the run.</param>
    /// <exception cref="OperationCanceledException">The token fired before or during the run.</exception>
    public void Run(ReadOnlySpan<long> userIds, Memory<float> embeddings, CancellationToken cancellationToken = default)
    {
        if ((long)embeddings.Length != (long)userIds.Length * Dimensions)
        {
            throw new ArgumentException($"{nameof(embeddings)} holds {embeddings.Length} values; {userIds.Length} users of model '{Model}' need {(long)userIds.Length * Dimensions}.", nameof(embeddings));
        }

        cancellationToken.ThrowIfCancellationRequested();
        int count = userIds.Length;
        if (!TryEnter())
        {
            throw new ObjectDisposedException(nameof(OnnxEmbeddingInference), $"The ONNX session of model '{Model}' was disposed.");
        }

        var features = ArrayPool<float>.Shared.Rent(Math.Max(1, count * Features));
        try
        {
            if (count == 0)
            {
                return;
            }

            for (int i = 0; i < count; i++)
            {
                var row = features.AsSpan(i * Features, Features);
                row.Clear();
                _features(userIds[i], row);
            }

            using var input = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, features.AsMemory(0, count * Features), [count, Features]);
            using var output = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, embeddings, [count, Dimensions]);
            using var run = new RunOptions();
            using var terminate = cancellationToken.Register(static r => ((RunOptions)r!).Terminate = true, run);
            try
            {
                _session.Run(run, _inputNames, [input], _outputNames, [output]);
            }
            catch (OnnxRuntimeException) when (cancellationToken.IsCancellationRequested)
            {
                throw new OperationCanceledException($"The ONNX run of model '{Model}' was terminated: its call was cancelled.", cancellationToken);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(features);
            Exit();
        }
    }

    /// <summary>Releases the ONNX Runtime session (after the runs in progress end); later runs throw
    /// <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            Exit();
        }
    }

    private bool TryEnter()
    {
        int active = Volatile.Read(ref _active);
        while (active > 0 && Volatile.Read(ref _disposed) == 0)
        {
            int seen = Interlocked.CompareExchange(ref _active, active + 1, active);
            if (seen == active)
            {
                return true;
            }

            active = seen;
        }

        return false;
    }

    private void Exit()
    {
        if (Interlocked.Decrement(ref _active) == 0)
        {
            _session.Dispose();
        }
    }

    private (string Name, long[] Shape) Pick(IReadOnlyDictionary<string, NodeMetadata> tensors, string? wanted, string kind)
    {
        string name;
        if (!string.IsNullOrWhiteSpace(wanted))
        {
            if (!tensors.ContainsKey(wanted))
            {
                throw new InvalidOperationException(
                    $"The ONNX model of '{Model}' has no {kind} '{wanted}'; its {kind}s: {string.Join(", ", tensors.Keys)}.");
            }

            name = wanted;
        }
        else if (tensors.Count == 1)
        {
            name = tensors.Keys.First();
        }
        else
        {
            throw new InvalidOperationException(
                $"The ONNX model of '{Model}' has {tensors.Count} {kind}s ({string.Join(", ", tensors.Keys)}): name the one to use (Onnx:{(kind == "input" ? "Input" : "Output")}).");
        }

        var metadata = tensors[name];
        if (!metadata.IsTensor || metadata.ElementDataType != TensorElementType.Float)
        {
            throw new InvalidOperationException(
                $"The ONNX model of '{Model}': {kind} '{name}' holds {metadata.ElementDataType}, not float tensors.");
        }

        return (name, metadata.Dimensions.Select(d => (long)d).ToArray());
    }

    private InvalidOperationException Shape(string kind, string name, long[] shape, string expected) =>
        new($"The ONNX model of '{Model}': {kind} '{name}' has shape [{string.Join(", ", shape.Select(d => d < 0 ? "batch" : d.ToString(System.Globalization.CultureInfo.InvariantCulture)))}], expected {expected}.");
}
