using System.Runtime.InteropServices;
using Google.Protobuf;

namespace ERCache.Samples.RankingService;

/// <summary>
/// Writes a <see cref="UserTower"/> as an ONNX model: input <c>features</c> <c>[batch, 64]</c> → Gemm → Relu → Gemm →
/// Relu → Gemm → output <c>embedding</c> <c>[batch, Dimensions]</c>, the weights as initializers, a dynamic batch axis.
/// The file is the ONNX protobuf (ModelProto, IR version 8, opset 17) written field by field with Google.Protobuf's
/// coded stream, so no Python or ONNX tooling is needed to regenerate it:
/// <c>dotnet run --project samples/ERCache.Samples.RankingService -- --export-onnx cvr</c>.
/// </summary>
public static class OnnxTowerExport
{
    private const int FloatType = 1;   // TensorProto.DataType.FLOAT
    private const int IntAttribute = 2; // AttributeProto.AttributeType.INT

    /// <summary>The ONNX model of <paramref name="tower"/>.</summary>
    public static byte[] Write(UserTower tower)
    {
        int[] sizes = [UserTower.Features, tower.HiddenWidth, tower.HiddenWidth, tower.Dimensions];
        return Message(model =>
        {
            model.WriteTag(1, WireFormat.WireType.Varint);
            model.WriteInt64(8); // ir_version
            WriteString(model, 2, "ERCache.Samples.RankingService"); // producer_name
            WriteMessage(model, 7, graph =>
            {
                string previous = "features";
                for (int layer = 0; layer < 3; layer++)
                {
                    string output = layer == 2 ? "embedding" : $"dense{layer}";
                    WriteMessage(graph, 1, node => Node(node, "Gemm", $"gemm{layer}", [previous, $"w{layer}", $"b{layer}"], output, transB: true));
                    if (layer < 2)
                    {
                        WriteMessage(graph, 1, node => Node(node, "Relu", $"relu{layer}", [output], $"{output}_relu", transB: false));
                        output = $"{output}_relu";
                    }

                    previous = output;
                }

                WriteString(graph, 2, $"{tower.Model}_user_tower"); // name
                for (int layer = 0; layer < 3; layer++)
                {
                    int inputs = sizes[layer], outputs = sizes[layer + 1];
                    var weights = tower.Weights(layer).ToArray();
                    var biases = tower.Biases(layer).ToArray();
                    WriteMessage(graph, 5, t => Tensor(t, $"w{layer}", [outputs, inputs], weights)); // [N, K], used with transB
                    WriteMessage(graph, 5, t => Tensor(t, $"b{layer}", [outputs], biases));
                }

                WriteMessage(graph, 11, v => ValueInfo(v, "features", UserTower.Features));
                WriteMessage(graph, 12, v => ValueInfo(v, "embedding", tower.Dimensions));
            });
            WriteMessage(model, 8, opset =>
            {
                opset.WriteTag(2, WireFormat.WireType.Varint);
                opset.WriteInt64(17); // the default domain's opset version
            });
        });
    }

    private static void Node(CodedOutputStream node, string op, string name, string[] inputs, string output, bool transB)
    {
        foreach (var input in inputs)
        {
            WriteString(node, 1, input);
        }

        WriteString(node, 2, output);
        WriteString(node, 3, name);
        WriteString(node, 4, op);
        if (transB)
        {
            WriteMessage(node, 5, attribute =>
            {
                WriteString(attribute, 1, "transB");
                attribute.WriteTag(3, WireFormat.WireType.Varint);
                attribute.WriteInt64(1);
                attribute.WriteTag(20, WireFormat.WireType.Varint);
                attribute.WriteInt32(IntAttribute);
            });
        }
    }

    private static void Tensor(CodedOutputStream tensor, string name, long[] dims, float[] values)
    {
        foreach (long dim in dims)
        {
            tensor.WriteTag(1, WireFormat.WireType.Varint);
            tensor.WriteInt64(dim);
        }

        tensor.WriteTag(2, WireFormat.WireType.Varint);
        tensor.WriteInt32(FloatType);
        WriteString(tensor, 8, name);
        tensor.WriteTag(9, WireFormat.WireType.LengthDelimited);
        tensor.WriteBytes(ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan()))); // raw_data, little-endian
    }

    /// <summary>A float tensor <c>[batch, width]</c> with a named dynamic batch axis.</summary>
    private static void ValueInfo(CodedOutputStream value, string name, int width)
    {
        WriteString(value, 1, name);
        WriteMessage(value, 2, type => WriteMessage(type, 1, tensor =>
        {
            tensor.WriteTag(1, WireFormat.WireType.Varint);
            tensor.WriteInt32(FloatType);
            WriteMessage(tensor, 2, shape =>
            {
                WriteMessage(shape, 1, dim => WriteString(dim, 2, "batch"));
                WriteMessage(shape, 1, dim =>
                {
                    dim.WriteTag(1, WireFormat.WireType.Varint);
                    dim.WriteInt64(width);
                });
            });
        }));
    }

    private static void WriteString(CodedOutputStream output, int field, string value)
    {
        output.WriteTag(field, WireFormat.WireType.LengthDelimited);
        output.WriteString(value);
    }

    private static void WriteMessage(CodedOutputStream output, int field, Action<CodedOutputStream> write)
    {
        output.WriteTag(field, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(ByteString.CopyFrom(Message(write)));
    }

    private static byte[] Message(Action<CodedOutputStream> write)
    {
        using var buffer = new MemoryStream();
        using (var output = new CodedOutputStream(buffer, leaveOpen: true))
        {
            write(output);
        }

        return buffer.ToArray();
    }
}
